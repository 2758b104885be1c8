"""One wrapper for every HTTP handler: method check, errors to problem+json (or to the body
another protocol's errors have), bugs logged. It wraps plain and `async def` handlers alike.

A handler is a module-level function of the request and the app's `Services`
(`functions/api/handlers.py`, `v2_handlers.py`); a blueprint declares it through `bind`, which
hands it the services. Every function the app declares is `async def` (the runtime runs it on
its event loop): a plain handler is declared through `in_pool`, which runs it in one of the
app's pools (functions/pools.py), never on the loop and never in the runtime's own thread pool;
an `async def` one that hands work to a pool through `with_context`."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import azure.functions as func

from functions.api.problems import ApiError, MethodNotAllowed, problem_for
from functions.api.responses import problem_response
from functions.pools import Pool, invocation

if TYPE_CHECKING:
    from functions.composition import Services

log = logging.getLogger(__name__)
# Every function is declared for every method, so that a wrong one gets 405 from `endpoint`.
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
Handler = Callable[..., func.HttpResponse]  # (req, services), or (req) once bound
AsyncHandler = Callable[..., Awaitable[func.HttpResponse]]
ErrorAnswer = Callable[[ApiError], func.HttpResponse]


def endpoint(
    *allowed_methods: str, answer_error: ErrorAnswer = problem_response
) -> Callable[[Handler], Handler]:
    """The function is declared for every method, so that a wrong one gets a 405 problem+json
    from here rather than the host's bare 404. `answer_error` writes the body of every error
    answer; the status and headers always come from `problems.py`. The handler's arguments
    after the request (its services) are passed through."""

    # HEAD is GET without the body (RFC 9110); the host drops the body, as the Functions
    # host does for any function declared for HEAD.
    accepted_methods = (*allowed_methods, "HEAD") if "GET" in allowed_methods else allowed_methods

    def check_method(req: func.HttpRequest) -> None:
        if req.method.upper() not in accepted_methods:
            raise MethodNotAllowed(req.method.upper(), allowed_methods)

    def wrap(handler: Handler) -> Handler:
        if inspect.iscoroutinefunction(handler):

            @functools.wraps(handler)
            async def run_async(req: func.HttpRequest, *args: object) -> func.HttpResponse:
                try:
                    check_method(req)
                    return await handler(req, *args)
                except Exception as error:  # answered, and logged, in _failure
                    return answer_error(_failure(req, error))

            return run_async

        @functools.wraps(handler)
        def run(req: func.HttpRequest, *args: object) -> func.HttpResponse:
            try:
                check_method(req)
                return handler(req, *args)
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


def bind(handler: Handler | AsyncHandler, services: Services) -> Handler | AsyncHandler:
    """`handler(req, services)` (wrapped by `endpoint`) as a function of the request alone, of
    the same kind (plain or `async def`) and name: what a blueprint declares, an `async def` one
    as it is or through `with_context`, a plain one through `in_pool`."""
    if inspect.iscoroutinefunction(handler):

        async def run_async(req: func.HttpRequest) -> func.HttpResponse:
            return await handler(req, services)

        return _named_as(run_async, handler)

    def run(req: func.HttpRequest) -> func.HttpResponse:
        return handler(req, services)

    return _named_as(run, handler)


def in_pool(
    handler: Handler, pool: Pool, *, answer_error: ErrorAnswer = problem_response
) -> AsyncHandler:
    """The plain `handler` of the request alone (bound, and wrapped by `endpoint`) as an
    `async def` for the blueprint to declare, which runs it in `pool`, never on the event loop:
    whatever it does (a batch of 256, a photo to decode, a cold start, a model that hangs), the
    loop keeps answering /api/health and /api/models. An error from the pool itself is answered
    as `endpoint` answers the handler's."""

    async def run(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        with invocation(context):
            try:
                return await pool.run(handler, req)
            except Exception as error:  # answered, and logged, in _failure
                return answer_error(_failure(req, error))

    return _named_as(run, handler)


def with_context(handler: AsyncHandler) -> AsyncHandler:
    """The `async def` `handler` of the request alone (bound, and wrapped by `endpoint`),
    declared with the invocation's `context`, so that the work it hands to a pool runs tied to
    the invocation."""

    async def run(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        with invocation(context):
            return await handler(req)

    return _named_as(run, handler)


def _named_as[F: Callable[..., object]](declared: F, handler: Callable[..., object]) -> F:
    # Not functools.wraps: the worker would read the handler's signature through __wrapped__
    # and never pass `context` (or pass the services as a binding).
    declared.__name__, declared.__qualname__, declared.__doc__ = (
        handler.__name__,
        handler.__qualname__,
        handler.__doc__,
    )
    return declared
