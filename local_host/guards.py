"""What every request and connection goes through, as the Functions host guards itself: errors
as problem details that never echo the request; bodies bounded in size and time, and passed on as
sent (inflating gzip would turn 100 KB into 100 MB); ``Host.CORS`` on the functions' routes only,
as in Core Tools; connections capped, and given a time to send their headers."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_request import BaseRequest

logger = logging.getLogger(__name__)

# Ample for the largest body the app takes over a slow link; a stalled client gets a 408.
BODY_TIMEOUT_SECONDS = 30.0
BODY_TIMEOUT_KEY = web.AppKey("local_host.body_timeout_seconds", float)
_BODY_HEADERS = {"content-type", "content-length"}  # a problem answer has its own


def problem_response(status: int, detail: str, headers: dict | None = None) -> web.Response:
    """An ``application/problem+json`` answer (bytes, so that no charset is added)."""
    title = HTTPStatus(status).phrase
    document = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    body = json.dumps(document).encode()
    return web.Response(
        status=status, body=body, content_type="application/problem+json", headers=headers
    )


@web.middleware
async def logged_problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log each request with its final status; answer every error with problem details."""
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        # aiohttp's default text is "<status>: <reason>"; any other was written for people.
        default = error.text == f"{error.status}: {error.reason}"
        detail = "No function is served at this path." if error.status == 404 else error.reason
        kept = {k: v for k, v in error.headers.items() if k.lower() not in _BODY_HEADERS}
        response = problem_response(error.status, detail if default else error.text, kept)
        if not request.content.at_eof():
            response.force_close()  # the body was refused unread: close rather than wait for it
    except Exception:
        logger.exception("Unhandled error while serving %s %s", request.method, request.path)
        response = problem_response(500, "The local host failed; see its log.")
    elapsed_ms = (time.perf_counter() - started) * 1000
    logger.info("%s %s %d %.1f ms", request.method, request.path, response.status, elapsed_ms)
    return response


def cors(origins: Sequence[str], route_prefix: str) -> Middleware:
    """``Host.CORS`` (``*``: any origin) for paths under ``route_prefix``, as ASP.NET Core's CORS
    middleware in Core Tools applies it: any method and header, preflights answered 204."""
    allowed = {origin.strip().rstrip("/").lower() for origin in origins}
    prefix = "/" + route_prefix.strip("/").lower()

    @web.middleware
    async def apply_cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        path = request.path.lower()
        under_prefix = path == prefix or path.startswith(prefix.rstrip("/") + "/")
        if origin is None or not under_prefix:
            return await handler(request)
        listed = "*" in allowed or origin.rstrip("/").lower() in allowed
        allow = ("*" if "*" in allowed else origin) if listed else None
        headers = {hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: allow} if allow else {}
        if allow and allow != "*":
            headers[hdrs.VARY] = hdrs.ORIGIN
        preflight = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_METHOD)
        if request.method == "OPTIONS" and preflight is not None:
            if allow:  # a refused preflight gets no CORS headers
                headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = preflight
                if asked := request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS):
                    headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = asked
            return web.Response(status=204, headers=headers)
        response = await handler(request)
        response.headers.extend(headers)
        return response

    return apply_cors


async def read_body(request: web.Request) -> bytes:
    """The whole body; 413 over the limit (a declared length before a byte is read, a chunked
    body once it passes it), 408 when it does not arrive in time."""
    limit, declared = request.client_max_size, request.content_length
    if declared is not None and declared > limit:
        raise _too_large(declared, limit)
    timeout = request.app.get(BODY_TIMEOUT_KEY, BODY_TIMEOUT_SECONDS)
    try:
        async with asyncio.timeout(timeout):
            return await request.read()  # 413 once a chunked body passes the limit
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text=f"The body did not arrive within {timeout:g} s."
        ) from None


def _too_large(size: int, limit: int) -> web.HTTPRequestEntityTooLarge:
    text = f"The body is {size} bytes; this host reads at most {limit}."
    return web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size, text=text)


@dataclass(frozen=True)
class ListenerLimits:
    """Bounds on connections: the time to send headers (also the idle keep-alive time) and how
    many may be open; each can hold a body up to the limit, so the cap bounds slow uploads."""

    header_timeout_seconds: float = 10.0
    max_connections: int = 256

    def handler_options(self) -> dict:
        return {
            "access_log": None,  # logged_problems logs each request
            "keepalive_timeout": self.header_timeout_seconds,
            "auto_decompress": False,
            "lingering_time": 2.0,  # reading a refused upload's rest; aiohttp's 10 s let it go on
            "max_line_size": 8190,
            "max_field_size": 8190,
            "max_headers": 128,
        }


def _refusal_bytes() -> bytes:
    body = problem_response(503, "Too many open connections; try again shortly.").body
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class _Refusal(asyncio.Protocol):
    """A connection over the cap: answered 503 unread, and closed a second later (closing at
    once with the request unread would reset the connection and could lose the 503)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(_refusal_bytes())
        asyncio.get_running_loop().call_later(1.0, transport.close)


class _ProblemRequestHandler(web.RequestHandler):
    """aiohttp's request handler, answering what it cannot parse with problem+json (its own
    text/plain answer quotes the request), and saying when its connection closes."""

    on_lost: Callable[[], None] | None = None

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        if self.on_lost is not None:
            self.on_lost()
            self.on_lost = None

    def handle_error(self, request: BaseRequest, status: int = 500, exc=None, message=None):
        if status >= 500:
            logger.error("Error handling a request from %s", request.remote, exc_info=exc)
        else:  # the log gets the start of the parser's message, the client none of it
            logger.warning("Refused an unparsable request (%d): %.200r", status, message or exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer had started; the connection is dropped instead")
        detail = "The request is not valid HTTP/1.1, or its start line or headers are too long."
        response = problem_response(status, detail if status == 400 else "The local host failed.")
        response.force_close()
        return response


class CappedSite(web.BaseSite):
    """``web.TCPSite`` with its connections counted and capped (counted here, not from the
    server's list, which grows only once a connection is set up: a burst would pass)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, limits: ListenerLimits):
        super().__init__(runner)
        self.host, self.port, self.limits, self.open_connections = host, port, limits, 0

    @property
    def name(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _protocol(self) -> asyncio.BaseProtocol:
        if self.open_connections >= self.limits.max_connections:
            logger.warning("Refused a connection: %d are open (the cap)", self.open_connections)
            return _Refusal()
        options = self.limits.handler_options()
        handler = _ProblemRequestHandler(self._runner.server, loop=self._loop, **options)
        self.open_connections += 1
        handler.on_lost = self._lost
        return handler

    def _lost(self) -> None:
        self.open_connections -= 1

    async def start(self) -> None:
        await super().start()
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(self._protocol, self.host, self.port)
