"""The part of Azure's proxy worker the local host plays: the app indexed, loaded and invoked by
``azure-functions-runtime``'s coroutines, in this process. Everything about calling a function
(binding conversion, route parameters, ``context``, async functions on the loop and plain ones in
the runtime's thread pool, ``PYTHON_THREADPOOL_THREAD_COUNT``) is the runtime's."""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import azure_functions_runtime as runtime

from local_host.rpc import protos

StreamingMessage = protos.StreamingMessage
_PROPERTIES = {"protos": protos, "host": "127.0.0.1"}  # what the proxy worker adds to a message

logger = logging.getLogger(__name__)

HOST_VERSION = "4.0.0"  # the Functions host major version the app is written for
SCRIPT_MODULE = "function_app"  # the runtime's default PYTHON_SCRIPT_FILE_NAME, function_app.py


class WorkerFailed(RuntimeError):
    """The runtime answered a host request with a failure (e.g. indexing the app failed)."""


class InvocationFailed(RuntimeError):
    """The function raised; the runtime's message and stack are in the log."""


@dataclass(frozen=True)
class Function:
    """One indexed function: its id and the bindings the app declared (their JSON)."""

    name: str
    function_id: str
    bindings: tuple[Mapping[str, Any], ...]

    @property
    def trigger(self) -> Mapping[str, Any]:  # its "type": httpTrigger, eventGridTrigger, ...
        return next(b for b in self.bindings if b["type"].endswith("Trigger"))


async def _send(coroutine: Any, what: str, **message: Any) -> Any:
    """One host message through one of the runtime's coroutines, wrapped as the proxy worker
    wraps it (with the messages' classes and the host); the answer, if it succeeded."""
    request = StreamingMessage(**message)
    answer = await coroutine(SimpleNamespace(request=request, properties=_PROPERTIES))
    if answer.result.status != protos.StatusResult.Success:
        error = answer.result.exception
        raise WorkerFailed(f"{what} failed: {error.message}\n{error.stack_trace}".rstrip())
    return answer


class Worker:
    """The app in this process, as the runtime indexed it."""

    def __init__(self, functions: list[Function]) -> None:
        self.functions = functions

    @classmethod
    async def start(cls, app_directory: Path) -> Worker:
        """Index and load the app in ``app_directory`` (its ``function_app.py``)."""
        # The app imports its own packages. An app started before in this process (tests host
        # several, one after another) gives way: the runtime imports `function_app` by name.
        folder = str(app_directory.resolve())
        sys.path[:] = [folder, *(path for path in sys.path if path != folder)]
        sys.modules.pop(SCRIPT_MODULE, None)
        runtime.start_threadpool_executor()
        init = protos.WorkerInitRequest(function_app_directory=folder, host_version=HOST_VERSION)
        await _send(runtime.worker_init_request, "indexing the app", worker_init_request=init)
        listing = protos.FunctionsMetadataRequest(function_app_directory=folder)
        indexed = await _send(
            runtime.functions_metadata_request, "indexing", functions_metadata_request=listing
        )
        functions = []
        for metadata in indexed.function_metadata_results:
            name, function_id = metadata.name, metadata.function_id
            load = protos.FunctionLoadRequest(function_id=function_id, metadata=metadata)
            await _send(
                runtime.function_load_request, f"loading {name}", function_load_request=load
            )
            bindings = tuple(json.loads(raw) for raw in metadata.raw_bindings)
            functions.append(Function(name, function_id, bindings))
        return cls(functions)

    @staticmethod
    def stop() -> None:
        runtime.stop_threadpool_executor()

    def of_type(self, trigger_type: str) -> list[Function]:
        return [f for f in self.functions if f.trigger["type"] == trigger_type]

    async def invoke(self, function: Function, data: Any, reason: str) -> Any:
        """Call ``function`` with ``data`` (a ``TypedData``) for its trigger, between the host's
        "Executing"/"Executed" log lines; return its ``return_value`` (None without one)."""
        invocation_id, name = str(uuid.uuid4()), function.name
        logger.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", name, reason, invocation_id)
        started = time.perf_counter()
        trigger = protos.ParameterBinding(name=function.trigger["name"], data=data)
        request = protos.InvocationRequest(
            invocation_id=invocation_id, function_id=function.function_id, input_data=[trigger]
        )
        try:
            answer = await _send(runtime.invocation_request, name, invocation_request=request)
        except WorkerFailed as error:
            logger.error(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)\n%s",
                *(name, invocation_id, (time.perf_counter() - started) * 1000, error),
            )
            raise InvocationFailed(name) from None
        logger.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
            *(name, invocation_id, (time.perf_counter() - started) * 1000),
        )
        return answer.return_value if answer.HasField("return_value") else None


def typed_json(value: Any) -> Any:
    """A trigger's data as the host sends JSON (an event, a timer's status)."""
    return protos.TypedData(json=json.dumps(value))
