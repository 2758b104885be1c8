"""The one family of exceptions the app raises on purpose: each carries its HTTP status and
becomes an RFC 9457 problem+json body; the details go to the logs."""

from __future__ import annotations

from http import HTTPStatus


class ApiError(Exception):
    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}

    def problem(self) -> dict[str, object]:
        return {
            "type": "about:blank",
            "title": self.status.phrase,
            "status": int(self.status),
            "detail": self.detail,
        }


class BadRequest(ApiError):
    status = HTTPStatus.BAD_REQUEST


class MethodNotAllowed(ApiError):
    status = HTTPStatus.METHOD_NOT_ALLOWED

    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"{method} is not supported here; use {' or '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )


class PayloadTooLarge(ApiError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class UnsupportedMediaType(ApiError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class ServiceUnavailable(ApiError):
    status = HTTPStatus.SERVICE_UNAVAILABLE


class TooManyRequests(ApiError):
    status = HTTPStatus.TOO_MANY_REQUESTS
