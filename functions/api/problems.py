"""Where errors become HTTP: each error the app raises on purpose has its status, headers and
client-facing detail here, and nowhere else. Answered as RFC 9457 problem+json; the details
go to the logs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from http import HTTPStatus

from functions.errors import (
    CompressedBody,
    DecodersBusy,
    InferenceBusy,
    InputTooLarge,
    InvalidInput,
    NoModelAvailable,
    StorageUnavailable,
    UnknownModel,
    UnsupportedContent,
)
from functions.serving.loaded_model import InferenceTimeout, ModelOutputError, ModelRunError

DECODERS_BUSY_RETRY_AFTER = "2"  # seconds: a picture takes well under one to prepare
STORAGE_RETRY_AFTER = "10"  # seconds: a storage hiccup, or an outage the client should not hammer
# Seconds: a served version that keeps failing is taken out of service after its third failure
# within a minute (functions/serving/strikes.py), at once; a busy instance frees up as fast.
MODEL_FAILED_RETRY_AFTER = "2"


class ApiError(Exception):
    """An answer that is not a success, with its status; `problem()` is its body."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(
        self,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        status: HTTPStatus | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        if status is not None:
            self.status = status

    def problem(self) -> dict[str, object]:
        return {
            "type": "about:blank",
            "title": self.status.phrase,
            "status": int(self.status),
            "detail": self.detail,
        }


class MethodNotAllowed(ApiError):
    status = HTTPStatus.METHOD_NOT_ALLOWED

    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"{method} is not supported here; use {' or '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )


class TooManyRequests(ApiError):
    status = HTTPStatus.TOO_MANY_REQUESTS


@dataclass(frozen=True)
class Problem:
    """How one kind of error is answered. `detail` None: the error's own message, which is
    written for clients; otherwise a fixed one, because the error's message is for the logs."""

    status: HTTPStatus
    detail: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    log_level: int = logging.INFO


# Looked up along the error's class hierarchy, so a subclass listed here wins over its base.
PROBLEMS: dict[type[Exception], Problem] = {
    InvalidInput: Problem(HTTPStatus.BAD_REQUEST),
    InputTooLarge: Problem(HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
    CompressedBody: Problem(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE, headers={"Accept-Encoding": "identity"}
    ),
    UnsupportedContent: Problem(HTTPStatus.UNSUPPORTED_MEDIA_TYPE),
    NoModelAvailable: Problem(HTTPStatus.SERVICE_UNAVAILABLE),
    UnknownModel: Problem(HTTPStatus.NOT_FOUND),
    # No fault of the request: every picture decoder stayed taken.
    DecodersBusy: Problem(
        HTTPStatus.SERVICE_UNAVAILABLE,
        detail="too many pictures are being prepared right now; retry shortly",
        headers={"Retry-After": DECODERS_BUSY_RETRY_AFTER},
        log_level=logging.WARNING,
    ),
    InferenceBusy: Problem(
        HTTPStatus.SERVICE_UNAVAILABLE,
        detail="too many predictions are waiting right now; retry shortly",
        headers={"Retry-After": DECODERS_BUSY_RETRY_AFTER},
        log_level=logging.WARNING,
    ),
    StorageUnavailable: Problem(
        HTTPStatus.SERVICE_UNAVAILABLE,
        detail="storage is not taking corrections right now; nothing was stored; retry later",
        headers={"Retry-After": STORAGE_RETRY_AFTER},
        log_level=logging.WARNING,
    ),
    # A model that lies about batches, or answers NaN or rows that are no probabilities: never
    # a wrong answer.
    ModelOutputError: Problem(
        HTTPStatus.SERVICE_UNAVAILABLE,
        detail="the served model gave an unusable answer; it has been logged",
        headers={"Retry-After": MODEL_FAILED_RETRY_AFTER},
        log_level=logging.ERROR,
    ),
    # A run past its bound, ended by the watchdog (functions/serving/watchdog.py).
    InferenceTimeout: Problem(
        HTTPStatus.SERVICE_UNAVAILABLE,
        detail="the served model took too long on this input and was stopped; it has been logged",
        headers={"Retry-After": MODEL_FAILED_RETRY_AFTER},
        log_level=logging.ERROR,
    ),
    # onnxruntime failed while running the served model on this input.
    ModelRunError: Problem(
        HTTPStatus.SERVICE_UNAVAILABLE,
        detail="the served model failed on this input; it has been logged",
        headers={"Retry-After": MODEL_FAILED_RETRY_AFTER},
        log_level=logging.ERROR,
    ),
}


def problem_for(error: Exception) -> tuple[ApiError, int] | None:
    """The answer to an error and the level to log it at; None for an error nobody expected
    (a bug, answered 500 by the caller)."""
    if isinstance(error, ApiError):
        return error, logging.INFO
    for kind in type(error).__mro__:
        problem = PROBLEMS.get(kind)
        if problem is not None:
            detail = problem.detail if problem.detail is not None else str(error)
            answer = ApiError(detail, headers=dict(problem.headers), status=problem.status)
            return answer, problem.log_level
    return None
