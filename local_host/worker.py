"""The part of Azure's proxy worker that the local host plays: the app indexed, loaded and invoked
through ``azure-functions-runtime``, in this process, by the coroutines Azure's worker calls.

Everything about calling a function (binding conversion, route parameters, ``context``, async
functions on the loop and plain ones in the runtime's thread pool, sized by
``PYTHON_THREADPOOL_THREAD_COUNT``) is the runtime's; the host only moves messages.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure_functions_runtime as runtime

from local_host.rpc import protos

logger = logging.getLogger(__name__)

HOST_VERSION = "4.0.0"  # the Functions host major version the app is written for
SCRIPT_MODULE = "function_app"  # the runtime's default PYTHON_SCRIPT_FILE_NAME, function_app.py


class WorkerFailed(RuntimeError):
    """The runtime answered a host request with a failure (e.g. indexing the app failed)."""

    def __init__(self, message: str, stack_trace: str = "") -> None:
        super().__init__(message)
        self.stack_trace = stack_trace


class InvocationFailed(RuntimeError):
    """The function raised; the runtime's message and stack are in the log."""


@dataclass(frozen=True)
class Function:
    """One indexed function: its id and the bindings the app declared (their JSON)."""

    name: str
    function_id: str
    bindings: tuple[Mapping[str, Any], ...]

    @property
    def trigger(self) -> Mapping[str, Any]:
        return next(b for b in self.bindings if b["type"].endswith("Trigger"))

    @property
    def trigger_type(self) -> str:
        return self.trigger["type"]  # httpTrigger, eventGridTrigger, timerTrigger, ...


@dataclass(frozen=True)
class _Request:
    """What the proxy worker passes each coroutine: the host's message and, for some, extras."""

    request: Any
    properties: Mapping[str, Any] | None = None


async def _send(coroutine: Any, what: str, properties: Mapping[str, Any] | None = None, **message):
    """One host message through one of the runtime's coroutines; its answer, if it succeeded."""
    answer = await coroutine(_Request(protos.StreamingMessage(**message), properties))
    if answer.result.status != protos.StatusResult.Success:
        error = answer.result.exception
        raise WorkerFailed(f"{what} failed: {error.message}", error.stack_trace)
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
        context = {"protos": protos, "host": "127.0.0.1"}
        await _send(
            runtime.worker_init_request, "indexing the app", context, worker_init_request=init
        )
        metadata = await _send(
            runtime.functions_metadata_request,
            "listing the app's functions",
            functions_metadata_request=protos.FunctionsMetadataRequest(
                function_app_directory=folder
            ),
        )
        functions = []
        for indexed in metadata.function_metadata_results:
            load = protos.FunctionLoadRequest(function_id=indexed.function_id, metadata=indexed)
            await _send(
                runtime.function_load_request, f"loading {indexed.name}", function_load_request=load
            )
            bindings = tuple(json.loads(raw) for raw in indexed.raw_bindings)
            functions.append(Function(indexed.name, indexed.function_id, bindings))
        return cls(functions)

    @staticmethod
    def stop() -> None:
        runtime.stop_threadpool_executor()

    def of_type(self, trigger_type: str) -> list[Function]:
        return [f for f in self.functions if f.trigger_type == trigger_type]

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
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)\n%s\n%s",
                *(name, invocation_id, (time.perf_counter() - started) * 1000),
                *(error, error.stack_trace),
            )
            raise InvocationFailed(str(error)) from None
        logger.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
            *(name, invocation_id, (time.perf_counter() - started) * 1000),
        )
        return answer.return_value if answer.HasField("return_value") else None


def typed_json(value: Any) -> Any:
    """A trigger's data as the host sends JSON (an event, a timer's status)."""
    return protos.TypedData(json=json.dumps(value))
