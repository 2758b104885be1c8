"""The app's functions as the host indexes them, and calling them as the Python worker does."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions.decorators.core import Binding, Trigger

logger = logging.getLogger(__name__)

# The parameter the worker fills with the invocation's func.Context, when a function has it.
CONTEXT_PARAMETER = "context"
_INVOCATION_THREADS = threading.local()  # the worker's is one per process too


class InvocationContext(func.Context):
    """What the worker hands a function's ``context`` parameter: its invocation id, and the
    thread-local storage the worker's log handler reads that id from."""

    def __init__(self, function_name: str) -> None:
        self._function_name, self._invocation_id = function_name, ""

    @property
    def invocation_id(self) -> str:
        # Made when first read: most invocations never read it, and a uuid4 costs a system call.
        if not self._invocation_id:
            self._invocation_id = str(uuid.uuid4())
        return self._invocation_id

    @property
    def thread_local_storage(self) -> threading.local:
        return _INVOCATION_THREADS

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return os.getcwd()

    @property
    def trace_context(self) -> None:
        return None

    @property
    def retry_context(self) -> None:
        return None


@dataclass(frozen=True)
class AppFunction:
    """One function with the bindings it declares."""

    name: str
    trigger: Trigger
    bindings: list[Binding]
    user_function: Callable[..., Any]

    @property
    def trigger_type(self) -> str:
        return self.trigger.type  # e.g. httpTrigger, blobTrigger, timerTrigger

    def check_takes_only_the_trigger(self, also_allowed: Collection[str] = ()) -> None:
        """Refuse at start-up a function needing bindings the local host does not supply
        (``also_allowed``: binding types the caller supplies too, such as an HTTP output)."""
        extra = [
            f"{binding.name} ({binding.type})"
            for binding in self.bindings
            if binding is not self.trigger and binding.type not in also_allowed
        ]
        if extra:
            raise ValueError(f"{self.name}: the local host does not supply {', '.join(extra)}")
        parameters = list(inspect.signature(self.user_function).parameters)
        if set(parameters) - {CONTEXT_PARAMETER} != {self.trigger.name}:
            raise ValueError(
                f"{self.name}: takes {parameters}, but its only binding is its "
                f"{self.trigger_type} {self.trigger.name!r} (besides, it may take "
                f"{CONTEXT_PARAMETER!r})"
            )

    @functools.cached_property
    def takes_context(self) -> bool:
        return CONTEXT_PARAMETER in inspect.signature(self.user_function).parameters

    @functools.cached_property
    def is_coroutine_function(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)

    async def call(self, trigger_value: Any) -> Any:
        """Call with the trigger's value, and the invocation's ``context`` if it asks for it:
        awaited when it is an ``async def``; a plain one runs in the default thread pool, so
        that a slow synchronous handler does not stall other requests (as in the worker)."""
        arguments = {self.trigger.name: trigger_value}
        if self.takes_context:
            arguments[CONTEXT_PARAMETER] = InvocationContext(self.name)
        if self.is_coroutine_function:
            return await self.user_function(**arguments)
        call = functools.partial(self.user_function, **arguments)
        return await asyncio.get_running_loop().run_in_executor(None, call)

    async def invoke_logged(self, reason: str, argument: Any) -> Any:
        """Call with the trigger's value between the host's "Executing"/"Executed" log lines;
        a failure is logged with its traceback and raised for the caller to answer."""
        logger.info("Executing 'Functions.%s' (Reason='%s')", self.name, reason)
        started = time.perf_counter()
        try:
            result = await self.call(argument)
        except Exception:
            logger.exception(
                "Executed 'Functions.%s' (Failed, Duration=%dms)",
                self.name,
                _ms(started),
            )
            raise
        logger.info(
            "Executed 'Functions.%s' (Succeeded, Duration=%dms)",
            self.name,
            _ms(started),
        )
        return result


def app_functions(function_app: func.FunctionApp) -> list[AppFunction]:
    """Every function of the app, blueprints included, in declaration order."""
    # get_functions() refuses to index twice; forget the names so an app can be served again.
    function_app.functions_bindings = None
    return [
        AppFunction(
            f.get_function_name(),
            f.get_trigger(),
            f.get_bindings(),
            f.get_user_function(),
        )
        for f in function_app.get_functions()
    ]


def resolve_setting_references(text: str, environ: Mapping[str, str] = os.environ) -> str:
    """Replace each ``%NAME%`` with the app setting ``NAME``; refuse one that is not set, as
    the host does."""

    def setting_value(reference: re.Match[str]) -> str:
        if not environ.get(name := reference.group(1)):
            raise ValueError(f"%{name}% does not resolve to a value: app setting {name} is not set")
        return environ[name]

    return re.sub(r"%([^%]+)%", setting_value, text)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
