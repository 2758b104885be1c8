"""The socket side of the local host: connection cap, header timeout, parser errors.

aiohttp's options do most of it: ``keepalive_timeout`` also closes a connection that has not
finished its request headers in that time, the head of a request is capped in size, and bodies
are passed on as sent (``auto_decompress=False``: inflating gzip would turn 100 KB into 100 MB
inside the event loop). Added here: a cap on open connections, and answers to requests aiohttp
cannot parse that are problem+json and never echo the request back.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest
from yarl import URL

from local_host.http_guards import problem_response

logger = logging.getLogger(__name__)

# A connection must finish its request headers within this time of opening (or of its previous
# answer); an idle keep-alive connection is closed after it too.
HEADER_TIMEOUT_SECONDS = 10.0
# Each open connection can hold one body of up to the body limit, so this bounds what slow
# uploads can pin; connections beyond it are answered 503 and closed.
MAX_CONNECTIONS = 256
# How long a refused connection may take to read its 503: closing at once with the request
# unread makes the kernel reset the connection, which can drop the 503.
REFUSAL_LINGER_SECONDS = 1.0
# After a body refused unread, the rest is read and dropped this long (so that the client gets
# the answer rather than a reset); aiohttp's default of 10 s let a refused upload go on.
LINGER_SECONDS = 2.0

_SERVICE_UNAVAILABLE_BODY = (
    b'{"type": "about:blank", "title": "Service Unavailable", "status": 503, '
    b'"detail": "Too many open connections; try again shortly."}'
)
_SERVICE_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
    + f"Content-Length: {len(_SERVICE_UNAVAILABLE_BODY)}\r\n".encode()
    + b"Retry-After: 1\r\nConnection: close\r\n\r\n"
    + _SERVICE_UNAVAILABLE_BODY
)


@dataclass(frozen=True)
class ListenerLimits:
    header_timeout_seconds: float = HEADER_TIMEOUT_SECONDS
    max_connections: int = MAX_CONNECTIONS

    def handler_options(self) -> dict[str, Any]:
        """Keyword arguments for aiohttp's request handler (and ``web.AppRunner``)."""
        return {
            "access_log": None,  # our middleware logs each request
            "keepalive_timeout": self.header_timeout_seconds,
            "auto_decompress": False,
            "lingering_time": LINGER_SECONDS,
            # aiohttp's own bounds on the head of a request, stated so that they stay bounds.
            "max_line_size": 8190,
            "max_field_size": 8190,
            "max_headers": 128,
        }


class _ProblemRequestHandler(web.RequestHandler):
    """aiohttp's request handler, with its own error answers as problem+json: its text/plain
    ones repeat the parser's message, which quotes the request."""

    on_connection_lost = None  # set by the factory that counts open connections

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        if self.on_connection_lost is not None:
            self.on_connection_lost()
            self.on_connection_lost = None

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            logger.error("Error handling a request from %s", request.remote, exc_info=exc)
        else:
            # The log gets the start of the parser's message, the client none of it.
            logger.warning(
                "Refused a request from %s that could not be parsed (%d): %.200r",
                request.remote,
                status,
                message or str(exc),
            )
        if request.writer.output_size > 0:
            raise ConnectionError("the answer had started; the connection is dropped instead")
        reason = HTTPStatus(status).phrase
        detail = (
            "The request is not valid HTTP/1.1, or its start line or headers are too long."
            if status == 400
            else f"The local host failed: {reason}."
        )
        response = problem_response(status, reason, detail)
        response.force_close()
        return response


class _RefuseConnection(asyncio.Protocol):
    """Answers 503 to a connection over the cap, reads nothing, and closes it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(_SERVICE_UNAVAILABLE)
        asyncio.get_running_loop().call_later(REFUSAL_LINGER_SECONDS, transport.close)

    def data_received(self, data: bytes) -> None:
        pass  # the request is refused unread


class _GuardedSite(web.BaseSite):
    """A TCP site like ``web.TCPSite`` whose connections are counted and capped."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, limits: ListenerLimits) -> None:
        super().__init__(runner)
        self._host, self._port, self._limits = host, port, limits
        # Counted here rather than from the server's list, which only grows once a connection
        # is set up: a burst of connects would all pass a check against it.
        self._open = 0

    @property
    def name(self) -> str:
        return str(URL.build(scheme="http", host=self._host, port=self._port))

    def _protocol(self) -> asyncio.BaseProtocol:
        if self._open >= self._limits.max_connections:
            logger.warning("Refused a connection: %d are open (the cap)", self._open)
            return _RefuseConnection()
        handler = _ProblemRequestHandler(
            self._runner.server, loop=asyncio.get_running_loop(), **self._limits.handler_options()
        )
        self._open += 1
        handler.on_connection_lost = self._closed
        return handler

    def _closed(self) -> None:
        self._open -= 1

    async def start(self) -> None:
        await super().start()
        self._server = await asyncio.get_running_loop().create_server(
            self._protocol, self._host, self._port
        )


async def start_listening(
    web_app: web.Application, host: str, port: int, limits: ListenerLimits | None = None
) -> web.AppRunner:
    """Serve ``web_app`` on ``host:port`` (0: a free port); clean up the runner to stop."""
    limits = limits or ListenerLimits()
    runner = web.AppRunner(web_app, **limits.handler_options())
    await runner.setup()
    try:
        await _GuardedSite(runner, host, port, limits).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
