"""One wrapper for every HTTP function: method check, errors to problem+json, bugs logged."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import azure.functions as func

from functions.api.responses import problem_response
from functions.errors import ApiError, MethodNotAllowed

log = logging.getLogger(__name__)
Handler = Callable[[func.HttpRequest], func.HttpResponse]


def endpoint(*allowed_methods: str) -> Callable[[Handler], Handler]:
    """The function is declared for every method, so that a wrong one gets a 405 problem+json
    from here rather than the host's bare 404."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def run(req: func.HttpRequest) -> func.HttpResponse:
            try:
                if req.method.upper() not in allowed_methods:
                    raise MethodNotAllowed(req.method.upper(), allowed_methods)
                return handler(req)
            except ApiError as error:
                log.info("%s %s -> %d: %s", req.method, req.url, error.status, error.detail)
                return problem_response(error)
            except Exception:
                log.exception("%s %s failed", req.method, req.url)
                return problem_response(ApiError("an internal error occurred; it has been logged"))

        return run

    return wrap
