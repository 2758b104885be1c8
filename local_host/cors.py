"""``Host.CORS`` from local.settings.json, applied to the functions' routes as Core Tools does.

Core Tools runs ASP.NET Core's CORS middleware with any header and any method for the listed
origins (``*`` for any): a preflight ``OPTIONS`` is answered 204 by the host itself, and
answers to an allowed origin carry ``Access-Control-Allow-Origin``. Unlike Core Tools, only
paths under the route prefix get CORS: the control routes (blob webhook, admin) stay
same-origin, so no page can be allowed to call them.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

ANY_ORIGIN = "*"


def cors_middleware(origins: Sequence[str], route_prefix: str) -> Middleware:
    """A middleware applying the allowed ``origins`` to paths under ``route_prefix``."""
    allowed = {_normalised(origin) for origin in origins}
    prefix = "/" + route_prefix.strip("/").lower() if route_prefix.strip("/") else ""

    def applies_to(request: web.Request) -> bool:
        path = request.path.lower()
        return not prefix or path == prefix or path.startswith(prefix + "/")

    def allow_origin(origin: str) -> str | None:
        if ANY_ORIGIN in allowed:
            return ANY_ORIGIN
        return origin if _normalised(origin) in allowed else None

    @web.middleware
    async def apply_cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None or not applies_to(request):
            return await handler(request)
        allowed_origin = allow_origin(origin)
        if _is_preflight(request):
            # Answered here, allowed or not, as ASP.NET Core does; a refusal has no CORS headers.
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


def _is_preflight(request: web.Request) -> bool:
    return (
        request.method == hdrs.METH_OPTIONS
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    )


def _preflight_headers(request: web.Request, allowed_origin: str) -> dict[str, str]:
    # Any method and any header: the request's own are echoed back.
    headers = {
        hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: allowed_origin,
        hdrs.ACCESS_CONTROL_ALLOW_METHODS: request.headers[hdrs.ACCESS_CONTROL_REQUEST_METHOD],
    }
    requested_headers = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS)
    if requested_headers:
        headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = requested_headers
    if allowed_origin != ANY_ORIGIN:
        headers[hdrs.VARY] = hdrs.ORIGIN
    return headers


def _normalised(origin: str) -> str:
    return origin.strip().rstrip("/").lower()
