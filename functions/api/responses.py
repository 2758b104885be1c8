"""JSON, problem+json and Open Inference Protocol error responses."""

from __future__ import annotations

import azure.functions as func

from functions.api.problems import ApiError
from functions.json_codec import to_json

NO_STORE = {"Cache-Control": "no-store"}


def json_response(
    body: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        to_json(body),
        status_code=status,
        headers={**NO_STORE, **(headers or {})},
        mimetype="application/json",
        charset="utf-8",
    )


def problem_response(error: ApiError) -> func.HttpResponse:
    return func.HttpResponse(
        to_json(error.problem()),
        status_code=int(error.status),
        headers={**NO_STORE, **error.headers},
        mimetype="application/problem+json",
        charset="utf-8",
    )


def v2_error_response(error: ApiError) -> func.HttpResponse:
    """The Open Inference Protocol's error body, {"error": "..."}, with the same status and
    headers our own API gives the same error."""
    return json_response({"error": error.detail}, status=int(error.status), headers=error.headers)
