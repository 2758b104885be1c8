"""JSON and problem+json responses."""

from __future__ import annotations

import json

import azure.functions as func

from functions.api.problems import ApiError

NO_STORE = {"Cache-Control": "no-store"}


def json_response(
    body: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers={**NO_STORE, **(headers or {})},
        mimetype="application/json",
        charset="utf-8",
    )


def problem_response(error: ApiError) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(error.problem()),
        status_code=int(error.status),
        headers={**NO_STORE, **error.headers},
        mimetype="application/problem+json",
        charset="utf-8",
    )
