"""Translate between aiohttp requests/responses and ``azure.functions`` HTTP objects."""

from __future__ import annotations

from collections.abc import Iterable

import azure.functions as func
from aiohttp import web
from multidict import CIMultiDict

from local_host.request_body import read_body


async def to_function_request(request: web.Request) -> func.HttpRequest:
    """The ``func.HttpRequest`` the Functions host would hand to the function."""
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=_join_repeated((name.lower(), value) for name, value in request.headers.items()),
        params=_join_repeated(request.query.items()),
        route_params=dict(request.match_info),
        # Content-Encoding is passed through as sent: the app decides what it accepts.
        body=await read_body(request),
    )


def to_web_response(result: object) -> web.Response:
    """The aiohttp response for what an HTTP function returned.

    Mirrors the worker's HttpResponseConverter: a ``str`` is a 200 text body, and an
    explicit Content-Type header wins over ``mimetype``/``charset``.
    """
    if isinstance(result, str):
        result = func.HttpResponse(result)
    if not isinstance(result, func.HttpResponse):
        raise TypeError(
            f"an HTTP function must return func.HttpResponse or str, not {type(result).__name__}"
        )
    headers = CIMultiDict(result.headers.items())
    if "Content-Type" not in headers:
        headers["Content-Type"] = (
            f"{result.mimetype}; charset={result.charset}"
            if result.mimetype.startswith("text/")
            else result.mimetype
        )
    return web.Response(status=result.status_code, body=result.get_body(), headers=headers)


def _join_repeated(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Collapse repeated keys into one comma-separated value, as the Functions host does."""
    joined: dict[str, str] = {}
    for key, value in pairs:
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined
