"""What every request goes through: its log line, CORS, problem+json errors, a bounded body.

Errors are RFC 9457 problem details that never echo the request. ``Host.CORS`` applies to the
functions' routes only, as Core Tools applies it there: the control routes (blob webhook,
admin) stay same-origin, so no page can be allowed to call them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
ANY_ORIGIN = "*"
# Ample for the largest body the app takes over a slow link; a stalled client gets a 408.
BODY_TIMEOUT_SECONDS = 30.0
BODY_TIMEOUT_KEY = web.AppKey("local_host.body_timeout_seconds", float)


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
async def request_logging_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost, so that it logs the final status of error answers too."""
    started = time.perf_counter()
    response = await handler(request)
    elapsed_ms = (time.perf_counter() - started) * 1000
    logger.info("%s %s %d %.1f ms", request.method, request.path, response.status, elapsed_ms)
    return response


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
        response = problem_response(error.status, error.reason, _detail(error), kept_headers)
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


def cors_middleware(origins: Sequence[str], route_prefix: str) -> Middleware:
    """The allowed ``origins`` (``*``: any) for paths under ``route_prefix``, as ASP.NET Core's
    CORS middleware in Core Tools applies them: any method, any header, preflights answered 204."""
    allowed = {_normalised(origin) for origin in origins}
    prefix = "/" + route_prefix.strip("/").lower() if route_prefix.strip("/") else ""

    def allow_origin(origin: str) -> str | None:
        if ANY_ORIGIN in allowed:
            return ANY_ORIGIN
        return origin if _normalised(origin) in allowed else None

    @web.middleware
    async def apply_cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        path = request.path.lower()
        if origin is None or (prefix and path != prefix and not path.startswith(prefix + "/")):
            return await handler(request)
        allowed_origin = allow_origin(origin)
        if (
            request.method == hdrs.METH_OPTIONS
            and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
        ):
            # Answered here, allowed or not; a refusal has no CORS headers.
            response = web.Response(status=204)
            if allowed_origin is not None:
                response.headers.update(_preflight_headers(request, allowed_origin))
            return response
        response = await handler(request)
        if allowed_origin is not None:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = allowed_origin
            if allowed_origin != ANY_ORIGIN:
                response.headers.add(hdrs.VARY, hdrs.ORIGIN)
        return response

    return apply_cors


def _preflight_headers(request: web.Request, allowed_origin: str) -> dict[str, str]:
    # Any method and any header: the request's own are echoed back.
    headers = {
        hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: allowed_origin,
        hdrs.ACCESS_CONTROL_ALLOW_METHODS: request.headers[hdrs.ACCESS_CONTROL_REQUEST_METHOD],
    }
    if requested_headers := request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS):
        headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = requested_headers
    if allowed_origin != ANY_ORIGIN:
        headers[hdrs.VARY] = hdrs.ORIGIN
    return headers


def _normalised(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


async def read_body(request: web.Request) -> bytes:
    """The whole body; 413 when it is over the limit (a declared length before a byte is read,
    a chunked body once it passes it), 408 when it does not arrive in time."""
    limit = request.client_max_size
    declared = request.content_length
    if declared is not None and declared > limit:
        raise web.HTTPRequestEntityTooLarge(
            max_size=limit,
            actual_size=declared,
            text=f"The body is {declared} bytes; this host reads at most {limit}.",
        )
    timeout = request.app.get(BODY_TIMEOUT_KEY, BODY_TIMEOUT_SECONDS)
    try:
        async with asyncio.timeout(timeout):
            return await request.read()  # raises 413 once a chunked body passes the limit
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text=f"The body did not arrive within {timeout:g} s."
        ) from None
