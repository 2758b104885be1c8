"""Read a request body within the host's bounds: its size limit and a time limit.

A ``Content-Length`` over the limit is refused before a byte of the body is read; a chunked
body is cut off as soon as it passes the limit (aiohttp's ``client_max_size``). A body that
does not arrive in time is refused too, so a client that never finishes cannot hold a worker.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

# Ample for the largest body the app takes over a slow link; a stalled client gets a 408.
BODY_TIMEOUT_SECONDS = 30.0
BODY_TIMEOUT_KEY = web.AppKey("local_host.body_timeout_seconds", float)


async def read_body(request: web.Request) -> bytes:
    """The whole body; HTTP 413 when it is over the limit, 408 when it is too slow."""
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
