"""The app's functions as the host indexes them, and calling them as the Python worker does."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions.decorators.core import Binding, Trigger

logger = logging.getLogger(__name__)

_SETTING_REFERENCE = re.compile(r"%([^%]+)%")


@dataclass(frozen=True)
class AppFunction:
    """One function with the bindings it declares."""

    name: str
    trigger: Trigger
    bindings: list[Binding]
    user_function: Callable[..., Any]

    @property
    def trigger_type(self) -> str:
        """The binding type of the trigger, e.g. ``httpTrigger`` or ``blobTrigger``."""
        return self.trigger.type


def app_functions(function_app: func.FunctionApp) -> list[AppFunction]:
    """Every function of the app, blueprints included, in declaration order."""
    # get_functions() remembers the names it has seen and refuses to run a second time;
    # forget them so that the same app can be served again (tests, restarts).
    function_app.functions_bindings = None
    return [
        AppFunction(
            name=function.get_function_name(),
            trigger=function.get_trigger(),
            bindings=function.get_bindings(),
            user_function=function.get_user_function(),
        )
        for function in function_app.get_functions()
    ]


def check_takes_only_the_trigger(function: AppFunction, also_allowed: Collection[str] = ()) -> None:
    """Refuse at startup, as the worker would, a function needing more than its trigger
    (``also_allowed``: binding types the caller supplies too, such as an HTTP return value)."""
    extra_bindings = [
        f"{binding.name} ({binding.type})"
        for binding in function.bindings
        if binding is not function.trigger and binding.type not in also_allowed
    ]
    if extra_bindings:
        raise ValueError(
            f"{function.name}: the local host does not supply these bindings yet: "
            + ", ".join(extra_bindings)
        )
    parameters = list(inspect.signature(function.user_function).parameters)
    if parameters != [function.trigger.name]:
        raise ValueError(
            f"{function.name}: takes {parameters}, but its only binding is its "
            f"{function.trigger_type} {function.trigger.name!r}"
        )


def resolve_setting_references(text: str, environ: Mapping[str, str] = os.environ) -> str:
    """Replace each ``%NAME%`` in a binding property with the app setting ``NAME``; refuse
    (as the host does) a reference that does not resolve."""

    def setting_value(reference: re.Match[str]) -> str:
        name = reference.group(1)
        if not environ.get(name):
            raise ValueError(f"%{name}% does not resolve to a value: app setting {name} is not set")
        return environ[name]

    return _SETTING_REFERENCE.sub(setting_value, text)


async def call_user_function(user_function: Callable[..., Any], **arguments: Any) -> Any:
    """Await a coroutine function; run a plain one in the loop's default thread pool, so that
    a slow synchronous handler does not stall every other request (as in the worker)."""
    if inspect.iscoroutinefunction(user_function):
        return await user_function(**arguments)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(user_function, **arguments))


async def invoke_logged(function: AppFunction, reason: str, **arguments: Any) -> Any:
    """Call the function with the host's "Executing" / "Executed" log lines around it.

    A failure is logged with its traceback here and raised again for the caller to answer.
    """
    logger.info("Executing 'Functions.%s' (Reason='%s')", function.name, reason)
    started = time.perf_counter()
    try:
        result = await call_user_function(function.user_function, **arguments)
    except Exception:
        logger.exception(
            "Executed 'Functions.%s' (Failed, Duration=%dms)", function.name, _ms_since(started)
        )
        raise
    logger.info(
        "Executed 'Functions.%s' (Succeeded, Duration=%dms)", function.name, _ms_since(started)
    )
    return result


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
