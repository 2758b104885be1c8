"""Where errors become HTTP: each error the app raises on purpose has its status, headers and
client-facing detail here, and nowhere else. Every family on `functions.errors.AppError` is
mapped here: the request's (functions/api/request_errors.py), serving's
(functions/serving/errors.py), the model contract's (functions/model_contract.py), feedback's
(functions/feedback/errors.py) and storage's (functions/storage/errors.py). Answered as RFC 9457
problem+json; the details go to the logs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from http import HTTPStatus

from functions.api.request_errors import (
    CompressedBody,
    InputTooLarge,
    InvalidInput,
    UnsupportedContent,
)
from functions.feedback.errors import InvalidItem
from functions.model_contract import InferenceTimeout, ModelOutputError, ModelRunError
from functions.serving.errors import DecodersBusy, InferenceBusy, NoModelAvailable, UnknownModel
from functions.storage.errors import StorageUnavailable

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


def _unavailable(detail: str, retry_after: str) -> Problem:
    """No fault of the request: a 503 to retry, logged as a warning."""
    headers = {"Retry-After": retry_after}
    return Problem(HTTPStatus.SERVICE_UNAVAILABLE, detail, headers, log_level=logging.WARNING)


def _model_failed(what: str) -> Problem:
    """The served model failed: a 503, logged as an error (the log has the details)."""
    detail = f"the served model {what}; it has been logged"
    headers = {"Retry-After": MODEL_FAILED_RETRY_AFTER}
    return Problem(HTTPStatus.SERVICE_UNAVAILABLE, detail, headers, log_level=logging.ERROR)


# Looked up along the error's class hierarchy, so a subclass listed here wins over its base.
PROBLEMS: dict[type[Exception], Problem] = {
    # The request's: the client's to fix.
    InvalidInput: Problem(HTTPStatus.BAD_REQUEST),
    InputTooLarge: Problem(HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
    CompressedBody: Problem(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE, headers={"Accept-Encoding": "identity"}
    ),
    UnsupportedContent: Problem(HTTPStatus.UNSUPPORTED_MEDIA_TYPE),
    # Feedback's: a correction that breaks the item's contract.
    InvalidItem: Problem(HTTPStatus.BAD_REQUEST),
    # Serving's: what it cannot serve, and work it has no room for (no fault of the request:
    # every picture decoder or inference thread is taken; try again).
    NoModelAvailable: Problem(HTTPStatus.SERVICE_UNAVAILABLE),
    UnknownModel: Problem(HTTPStatus.NOT_FOUND),
    DecodersBusy: _unavailable(
        "too many pictures are being prepared right now; retry shortly",
        DECODERS_BUSY_RETRY_AFTER,
    ),
    InferenceBusy: _unavailable(
        "too many predictions are waiting right now; retry shortly", DECODERS_BUSY_RETRY_AFTER
    ),
    # The model contract's: the served model failed on this input, never a wrong answer: an
    # answer that is no probabilities (or lies about batches), a run past its bound
    # (functions/serving/watchdog.py), or onnxruntime failing.
    ModelOutputError: _model_failed("gave an unusable answer"),
    InferenceTimeout: _model_failed("took too long on this input and was stopped"),
    ModelRunError: _model_failed("failed on this input"),
    # Storage's: every storage writer is taken, or storage does not answer.
    StorageUnavailable: _unavailable(
        "storage is not taking corrections right now; nothing was stored; retry later",
        STORAGE_RETRY_AFTER,
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
