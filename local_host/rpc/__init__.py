"""The Functions protocol's messages in one namespace, as Azure's proxy worker hands them to
azure-functions-runtime; `make setup` compiles them from third_party/azure-functions-rpc/."""

from types import SimpleNamespace

try:
    from local_host.rpc import FunctionRpc_pb2
    from local_host.rpc.shared import NullableTypes_pb2
except ImportError as error:
    raise ImportError("the protocol's messages are not compiled: run `make setup`") from error

_modules = (FunctionRpc_pb2, NullableTypes_pb2)
protos = SimpleNamespace(**{k: v for m in _modules for k, v in vars(m).items() if k[0] != "_"})
