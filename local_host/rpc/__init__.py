"""The Functions protocol's messages, as Azure's proxy worker hands them to azure-functions-runtime
(one namespace of every message class). `make setup` compiles them from the .proto files in
third_party/azure-functions-rpc/."""

from types import SimpleNamespace

try:
    from local_host.rpc import FunctionRpc_pb2
    from local_host.rpc.shared import NullableTypes_pb2
except ImportError as error:
    raise ImportError(
        "local_host/rpc: the Functions protocol's messages are not compiled; run `make setup`"
    ) from error

protos = SimpleNamespace(
    **{
        name: value
        for module in (FunctionRpc_pb2, NullableTypes_pb2)
        for name, value in vars(module).items()
        if not name.startswith("_")
    }
)
