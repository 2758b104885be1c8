"""Log one line per request: method, path, status and duration."""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

logger = logging.getLogger(__name__)


@web.middleware
async def request_logging_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware, so it sees the final status of error responses too."""
    started = time.perf_counter()
    response = await handler(request)
    elapsed_ms = (time.perf_counter() - started) * 1000
    logger.info("%s %s %d %.1f ms", request.method, request.path, response.status, elapsed_ms)
    return response
