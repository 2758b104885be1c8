"""The Functions host's side of the real Python worker: find and build the worker copy, start it
as a child process, and drive its gRPC protocol (init, metadata, load, invocation) as the host
does, one message at a time."""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import subprocess
import sys
import threading
import uuid
from concurrent import futures
from pathlib import Path
from types import ModuleType

import pytest

from tests.stack import REPO_ROOT

WORKER_DIR_SETTING = "FUNCTIONS_WORKER_DIR"
DEFAULT_WORKER_DIR = REPO_ROOT.parent / "shared" / "functions-worker"
BUILD_ROOT = REPO_ROOT / "build" / "functions-worker"
PROTO_SOURCE = Path("azure_functions_worker/protos/_src/src/proto/FunctionRpc.proto")
HOST_VERSION = "4.34.0"
ANSWER_TIMEOUT = 120  # seconds; generous: a loaded 2-core box, and a promotion runs a trial


def worker_copy() -> Path:
    """The worker copy named by FUNCTIONS_WORKER_DIR (default ../shared/functions-worker);
    skips the caller when it is missing or cannot be built."""
    configured = os.environ.get(WORKER_DIR_SETTING)
    folder = Path(configured) if configured else DEFAULT_WORKER_DIR
    if not (folder / "build-worker").is_file():
        pytest.skip(
            f"no Azure Functions Python worker at {folder}: set {WORKER_DIR_SETTING} to a copy "
            "of the worker (default ../shared/functions-worker) to run the conformance suite"
        )
    if not (folder / PROTO_SOURCE).is_file():
        pytest.skip(
            f"the worker copy at {folder} lacks its gRPC protocol ({PROTO_SOURCE}); set "
            f"{WORKER_DIR_SETTING} to a complete copy to run the conformance suite"
        )
    return folder


def built_worker(copy: Path) -> Path:
    """build/functions-worker/<fingerprint>: the copy with its protocol compiled, built once per
    worker copy and interpreter (the copy itself is read-only)."""
    target = BUILD_ROOT / _fingerprint(copy)
    if (target / "azure_functions_worker" / "protos" / "FunctionRpc_pb2.py").is_file():
        return target
    staging = target.with_name(target.name + f".{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    build = subprocess.run(
        [str(copy / "build-worker"), sys.executable, str(staging)],
        check=False,  # a failure is reported below, with its output
        capture_output=True,
        text=True,
        timeout=300,
    )
    if build.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        pytest.fail(f"building the worker from {copy} failed:\n{build.stdout}\n{build.stderr}")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _fingerprint(copy: Path) -> str:
    """Changes with any file of the copy and with the interpreter that compiles it."""
    digest = hashlib.sha256(sys.executable.encode())
    for path in sorted(p for p in copy.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(copy)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def load_protos(build: Path) -> ModuleType:
    if str(build) not in sys.path:
        sys.path.insert(0, str(build))
    from azure_functions_worker import protos  # noqa: PLC0415 - exists once built

    return protos


class WorkerHost:
    """Serves FunctionRpc.EventStream on a loopback port and runs the worker against it. The
    stream carries one request at a time; rpc_log messages in between are kept, not answered."""

    def __init__(
        self, protos: ModuleType, build: Path, app_dir: Path, env: dict[str, str], log_path: Path
    ) -> None:
        self.protos = protos
        self.logs: list = []
        self.functions: dict[str, object] = {}  # name -> RpcFunctionMetadata, once indexed
        self._outgoing: queue.Queue = queue.Queue()
        self._incoming: queue.Queue = queue.Queue()
        self._server = _grpc().server(futures.ThreadPoolExecutor(max_workers=2))
        protos.add_FunctionRpcServicer_to_server(_Servicer(self), self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self._app_dir = app_dir
        self.log_path = log_path
        with open(self.log_path, "w") as log:  # a file, not a pipe: a full pipe would stall it
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    *("-m", "azure_functions_worker", "--host", "127.0.0.1", "--port", str(port)),
                    *("--workerId", uuid.uuid4().hex, "--requestId", uuid.uuid4().hex),
                    *("--grpcMaxMessageLength", "2147483647"),
                ],
                cwd=app_dir,
                env={
                    **env,
                    "FUNCTIONS_WORKER_RUNTIME": "python",
                    "PYTHONPATH": os.pathsep.join([str(build), str(app_dir)]),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._expect("start_stream")
        except BaseException:  # pytest.fail included: never leave the worker running
            self.close()
            raise

    def close(self) -> None:
        self._outgoing.put(None)
        self._server.stop(grace=1)
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def start(self):
        """Init, metadata, then a load of each indexed function, each checked to succeed, as
        the host starts an app; returns the metadata response."""
        success = self.protos.StatusResult.Success
        assert self.init().result.status == success, self.log()
        indexed = self.functions_metadata()
        assert indexed.result.status == success, self.log()
        for metadata in indexed.function_metadata_results:
            assert self.load(metadata).result.status == success, self.log()
            self.functions[metadata.name] = metadata
        return indexed

    def init(self):
        return self.send(
            "worker_init_request",
            self.protos.WorkerInitRequest(
                host_version=HOST_VERSION, function_app_directory=str(self._app_dir)
            ),
            "worker_init_response",
        )

    def functions_metadata(self):
        return self.send(
            "functions_metadata_request",
            self.protos.FunctionsMetadataRequest(function_app_directory=str(self._app_dir)),
            "function_metadata_response",
        )

    def load(self, metadata):
        return self.send(
            "function_load_request",
            self.protos.FunctionLoadRequest(function_id=metadata.function_id, metadata=metadata),
            "function_load_response",
        )

    def invoke(self, function_id: str, input_data: list, trigger_metadata: dict | None = None):
        return self.send(
            "invocation_request",
            self.protos.InvocationRequest(
                invocation_id=uuid.uuid4().hex,
                function_id=function_id,
                input_data=input_data,
                trigger_metadata=trigger_metadata or {},
            ),
            "invocation_response",
        )

    def call_http(
        self,
        function: str,
        method: str,
        url: str,
        headers: dict,
        body: bytes,
        *,
        params: dict[str, str] | None = None,
    ):
        """An HTTP trigger's invocation as the host sends it (the body as bytes: the worker
        declares RawHttpBodyBytes; `params`: the route's parameters); returns the worker's
        RpcHttp answer."""
        answer = self.invoke(
            self.functions[function].function_id,
            [
                self.protos.ParameterBinding(
                    name="req",
                    data=self.protos.TypedData(
                        http=self.protos.RpcHttp(
                            method=method,
                            url=url,
                            headers=headers,
                            body=self.protos.TypedData(bytes=body),
                            rawBody=self.protos.TypedData(bytes=body),
                            params=params or {},
                        )
                    ),
                )
            ],
        )
        assert answer.result.status == self.protos.StatusResult.Success, answer.result
        return answer.return_value.http

    def send(self, field: str, message, answer: str):
        self._outgoing.put(
            self.protos.StreamingMessage(request_id=uuid.uuid4().hex, **{field: message})
        )
        return self._expect(answer)

    def _expect(self, answer: str):
        while True:
            try:
                message = self._incoming.get(timeout=ANSWER_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"the worker sent no {answer} in {ANSWER_TIMEOUT} s:\n{self.log()}")
            if message is None:
                pytest.fail(f"the worker closed its stream before {answer}:\n{self.log()}")
            kind = message.WhichOneof("content")
            if kind == "rpc_log":
                self.logs.append(message.rpc_log)
            elif kind == answer:
                return getattr(message, kind)
            else:
                pytest.fail(f"the worker sent {kind} where {answer} was due:\n{self.log()}")

    def log(self) -> str:
        lines = [f"{entry.level} {entry.category}: {entry.message}" for entry in self.logs[-30:]]
        return "\n".join([*lines, self.log_path.read_text()[-3000:]])


class _Servicer:
    """FunctionRpc's one method: what the host sends comes from `_outgoing`, what the worker
    sends goes to `_incoming` (read on a thread of its own, so neither side waits on the other)."""

    def __init__(self, host: WorkerHost) -> None:
        self._host = host

    def EventStream(self, from_worker, context):  # noqa: N802 - the gRPC method's name
        def read() -> None:
            try:
                for message in from_worker:
                    self._host._incoming.put(message)
            finally:
                self._host._incoming.put(None)

        threading.Thread(target=read, daemon=True).start()
        while (message := self._host._outgoing.get()) is not None:
            yield message


def _grpc() -> ModuleType:
    import grpc  # noqa: PLC0415 - a test dependency of this suite only

    return grpc
