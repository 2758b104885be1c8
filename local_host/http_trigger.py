"""HTTP triggers: each function's route under the host.json prefix, the request handed to the
runtime as the ``RpcHttp`` the host sends, and the ``RpcHttp`` it returns turned into the answer."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC
from email.utils import format_datetime
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from local_host.guards import read_body
from local_host.rpc import protos
from local_host.worker import Function, InvocationFailed, Worker

logger = logging.getLogger(__name__)

HTTP_TRIGGER = "httpTrigger"
HTTP_REASON = "This function was programmatically called via the host APIs."  # the host's words
_PLAIN_PARAMETER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
# RpcHttpCookie.SameSite: None (unset) 0, Lax 1, Strict 2, ExplicitNone 3.
_SAME_SITE = {1: "lax", 2: "strict", 3: "none"}


def route_path(function: Function, route_prefix: str) -> str:
    """The aiohttp path of the function's route; a ValueError naming it for other templates."""
    route = (function.trigger.get("route") or function.name).strip("/")
    for segment in route.split("/"):
        if {"{", "}"} & set(_PLAIN_PARAMETER.sub("", segment)):
            raise ValueError(
                f"{function.name}: route {route!r} has {segment!r}; the local host serves literal "
                "segments and plain {name} parameters only (no constraints, optional or "
                "catch-all parameters)"
            )
    return "/" + "/".join(part for part in (route_prefix.strip("/"), route) if part)


def attach_http_functions(web_app: web.Application, worker: Worker, route_prefix: str) -> list[str]:
    """Route the worker's HTTP functions; return their lines for the start-up listing."""
    listing: list[str] = []
    served: dict[str, dict[str, Function]] = {}  # path -> method ("*": every one) -> function
    for function in worker.of_type(HTTP_TRIGGER):
        path = route_path(function, route_prefix)
        methods = [str(m).upper() for m in function.trigger.get("methods") or ["*"]]
        listing.append(f"{function.name}: [{','.join(methods)}] {{base}}{path}")
        taken = served.setdefault(path, {})
        for method in methods:  # two functions on one path and method would shadow each other
            clashes = [*taken.values()] if method == "*" else [taken.get(method), taken.get("*")]
            if other := next(filter(None, clashes), None):
                raise ValueError(f"{function.name}: {method} {path} is served by {other.name}")
            taken[method] = function
    # Literal paths first: aiohttp tries resources in the order they were added.
    for path in sorted(served, key=lambda path: "{" in path):
        resource = web_app.router.add_resource(path)
        for method, function in served[path].items():
            resource.add_route(method, _handler(worker, function))
        if "*" not in served[path]:  # a 405 naming the methods, not the site's 404
            resource.add_route("*", _not_allowed(sorted(served[path])))
    return listing


def _not_allowed(allowed: list[str]) -> Any:
    async def refuse(request: web.Request) -> web.StreamResponse:
        text = f"{request.method} is not allowed here; use {', '.join(allowed)}."
        raise web.HTTPMethodNotAllowed(request.method, allowed, text=text)

    return refuse


def _handler(worker: Worker, function: Function) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        http = protos.RpcHttp(
            method=request.method,
            url=str(request.url),
            headers=_joined([*request.headers.items(), ("X-Forwarded-For", request.remote or "")]),
            query=_joined(request.query.items(), str),
            params=dict(request.match_info),
            body=protos.TypedData(bytes=await read_body(request)),
        )
        try:
            returned = await worker.invoke(function, protos.TypedData(http=http), HTTP_REASON)
        except InvocationFailed:
            raise web.HTTPInternalServerError(
                text=f"Function {function.name!r} failed; see the local host's log."
            ) from None
        return to_web_response(function, returned)

    return handle


def to_web_response(function: Function, returned: Any) -> web.Response:
    """The answer for what the function returned: an ``RpcHttp``, or a string (a 200 text)."""
    kind = returned.WhichOneof("data") if returned is not None else None
    if kind == "string":
        return web.Response(text=returned.string)
    if kind != "http":
        logger.error("%s returned %s, not an HTTP response", function.name, kind or "nothing")
        raise web.HTTPInternalServerError(
            text=f"Function {function.name!r} did not return an HTTP response."
        )
    http = returned.http
    headers = CIMultiDict(http.headers)
    for cookie in http.cookies:
        headers.add("Set-Cookie", _set_cookie(cookie))
    return web.Response(status=int(http.status_code or 200), body=_body(http.body), headers=headers)


def _set_cookie(cookie: Any) -> str:
    """One of the runtime's cookies, with its attributes, as the host writes ``Set-Cookie``."""
    expires = cookie.HasField("expires") and cookie.expires.value.ToDatetime(tzinfo=UTC)
    attributes = {
        "expires": expires and format_datetime(expires, usegmt=True),
        "max-age": cookie.HasField("max_age") and str(int(cookie.max_age.value)),  # "0" counts
        "domain": cookie.domain.value,
        "path": cookie.path.value,
        "secure": cookie.secure.value,
        "samesite": _SAME_SITE.get(cookie.same_site),
        "httponly": cookie.http_only.value,
    }
    flags = [
        name if value is True else f"{name}={value}" for name, value in attributes.items() if value
    ]
    return "; ".join([f"{cookie.name}={cookie.value}", *flags])


def _body(data: Any) -> bytes:
    kind = data.WhichOneof("data")
    if kind == "bytes":
        return data.bytes
    return getattr(data, kind).encode() if kind in {"string", "json"} else b""


def _joined(pairs: Iterable[tuple[str, str]], case: Any = str.lower) -> dict[str, str]:
    """Repeated keys (put through `case`) become one comma-separated value, as in the host."""
    joined: dict[str, str] = {}
    for key, value in ((case(name), value) for name, value in pairs):
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined
