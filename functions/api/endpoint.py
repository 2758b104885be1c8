"""One wrapper for every HTTP function: method check, errors to problem+json (or to the body
another protocol's errors have), bugs logged. It wraps plain and `async def` handlers alike
(the worker runs the latter on its event loop)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable

import azure.functions as func

from functions.api.problems import ApiError, MethodNotAllowed, problem_for
from functions.api.responses import problem_response
from functions.serving.inputs import IMAGE_TYPES, media_type

log = logging.getLogger(__name__)
Handler = Callable[[func.HttpRequest], func.HttpResponse]
AsyncHandler = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]
ErrorAnswer = Callable[[ApiError], func.HttpResponse]
# A few images as JSON, or a small batch as binary: about 0.2 ms of work each, less than the
# hop to the runtime's thread pool and back costs (docs/benchmarks.md, Async or the thread pool).
ON_LOOP_MAX_BODY_BYTES = 16 * 1024


def endpoint(
    *allowed_methods: str, answer_error: ErrorAnswer = problem_response
) -> Callable[[Handler], Handler]:
    """The function is declared for every method, so that a wrong one gets a 405 problem+json
    from here rather than the host's bare 404. `answer_error` writes the body of every error
    answer; the status and headers always come from `problems.py`."""

    # HEAD is GET without the body (RFC 9110); the host drops the body, as the Functions
    # host does for any function declared for HEAD.
    accepted_methods = (*allowed_methods, "HEAD") if "GET" in allowed_methods else allowed_methods

    def check_method(req: func.HttpRequest) -> None:
        if req.method.upper() not in accepted_methods:
            raise MethodNotAllowed(req.method.upper(), allowed_methods)

    def wrap(handler: Handler) -> Handler:
        if inspect.iscoroutinefunction(handler):

            @functools.wraps(handler)
            async def run_async(req: func.HttpRequest) -> func.HttpResponse:
                try:
                    check_method(req)
                    return await handler(req)
                except Exception as error:  # answered, and logged, in _failure
                    return answer_error(_failure(req, error))

            return run_async

        @functools.wraps(handler)
        def run(req: func.HttpRequest) -> func.HttpResponse:
            try:
                check_method(req)
                return handler(req)
            except Exception as error:  # answered, and logged, in _failure
                return answer_error(_failure(req, error))

        return run

    return wrap


def _failure(req: func.HttpRequest, error: Exception) -> ApiError:
    """An error with a problem in `problems.py` is the client's answer; anything else is a bug:
    logged whole, answered 500."""
    known = problem_for(error)
    if known is not None:
        answer, level = known
        log.log(level, "%s %s -> %d: %s", req.method, req.url, answer.status, error)
        return answer
    log.error("%s %s failed", req.method, req.url, exc_info=error)
    return ApiError("an internal error occurred; it has been logged")


def small_bodies_on_the_loop(handler: Handler, *, ready: Callable[[], bool]) -> AsyncHandler:
    """The plain `handler` as an `async def` for the blueprint to declare: run on the event loop
    when the body is small and not a picture and `ready()` says nothing will block (the model is
    loaded); in a worker thread otherwise, so that a batch of 256, a photo to decode or a cold
    start never holds the loop."""

    async def run(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        picture = media_type(req.headers.get("Content-Type")) in IMAGE_TYPES
        if len(req.get_body()) <= ON_LOOP_MAX_BODY_BYTES and not picture and ready():
            return handler(req)
        return await asyncio.to_thread(_in_invocation, context, handler, req)

    # Not functools.wraps: the worker would read the handler's signature through __wrapped__
    # and never pass `context`.
    run.__name__, run.__qualname__, run.__doc__ = (
        handler.__name__,
        handler.__qualname__,
        handler.__doc__,
    )
    return run


def _in_invocation(
    context: func.Context, handler: Handler, req: func.HttpRequest
) -> func.HttpResponse:
    """What the worker does for the plain functions it runs in its own thread pool: the thread
    names the invocation, so that the logs written there are tied to it (Application Insights)."""
    context.thread_local_storage.invocation_id = context.invocation_id
    try:
        return handler(req)
    finally:
        context.thread_local_storage.invocation_id = None
