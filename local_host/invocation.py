"""Call a user function the way the Python worker does: async on the loop, sync in a thread."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


async def call_user_function(user_function: Callable[..., Any], **arguments: Any) -> Any:
    """Await a coroutine function; run a plain one in the loop's default thread pool.

    The thread pool keeps a slow synchronous handler (model inference, blob download)
    from stalling every other request, as the worker's own thread pool does.
    """
    if inspect.iscoroutinefunction(user_function):
        return await user_function(**arguments)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(user_function, **arguments))


async def invoke_logged(
    function_name: str, reason: str, user_function: Callable[..., Any], **arguments: Any
) -> Any:
    """Call the function with the host's "Executing" / "Executed" log lines around it.

    A failure is logged with its traceback here and raised again for the caller to answer.
    """
    logger.info("Executing 'Functions.%s' (Reason='%s')", function_name, reason)
    started = time.perf_counter()
    try:
        result = await call_user_function(user_function, **arguments)
    except Exception:
        logger.exception(
            "Executed 'Functions.%s' (Failed, Duration=%dms)", function_name, _ms_since(started)
        )
        raise
    logger.info(
        "Executed 'Functions.%s' (Succeeded, Duration=%dms)", function_name, _ms_since(started)
    )
    return result


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
