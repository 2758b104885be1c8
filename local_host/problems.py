"""Error responses as RFC 9457 problem details, and the middleware that produces them."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem_response(
    status: int, title: str, detail: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A ``application/problem+json`` response."""
    document = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    # Bytes rather than text: JSON is always UTF-8, so no charset parameter is added.
    return web.Response(
        status=status,
        body=json.dumps(document).encode(),
        content_type=PROBLEM_JSON,
        headers=headers,
    )


@web.middleware
async def problem_details_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error (unknown path, wrong method, crash) with problem details."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        # Keep headers such as Allow, drop the plain-text body's own content headers.
        kept_headers = {
            name: value
            for name, value in error.headers.items()
            if name.lower() not in {"content-type", "content-length"}
        }
        response = problem_response(
            error.status, error.reason, _detail(error), headers=kept_headers
        )
        if not request.content.at_eof():
            # The body was refused unread (too big, too slow): close rather than wait for it.
            response.force_close()
        return response
    except Exception:
        logger.exception("Unhandled error while serving %s %s", request.method, request.path)
        return problem_response(500, "Internal Server Error", "The local host failed; see its log.")


def _detail(error: web.HTTPException) -> str:
    # aiohttp's default text is just "<status>: <reason>"; anything else was written for people.
    if error.text and error.text != f"{error.status}: {error.reason}":
        return error.text
    if error.status == 404:
        return "No function is served at this path."
    return error.reason
