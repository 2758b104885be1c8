"""Serve ``httpTrigger`` functions as aiohttp routes under the host.json route prefix.

Route templates may have literal segments and plain ``{name}`` parameters; constraints
(``{id:int}``), optional (``{id?}``) and catch-all (``{*path}``) parameters are refused at
start-up rather than matched differently from Azure.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence

import azure.functions as func
from aiohttp import web
from multidict import CIMultiDict

from local_host.app_functions import AppFunction
from local_host.guards import read_body

logger = logging.getLogger(__name__)

HTTP_TRIGGER = "httpTrigger"
_PLAIN_PARAMETER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


def route_path(function: AppFunction, route_prefix: str) -> str:
    """The aiohttp path of the function's route; a ValueError naming it for other templates."""
    route = (getattr(function.trigger, "route", None) or function.name).strip("/")
    for segment in route.split("/"):
        if {"{", "}"} & set(_PLAIN_PARAMETER.sub("", segment)):
            raise ValueError(
                f"{function.name}: route {route!r} has {segment!r}; the local host serves literal "
                "segments and plain {name} parameters only (no constraints, optional or "
                "catch-all parameters)"
            )
    return "/" + "/".join(part for part in (route_prefix.strip("/"), route) if part)


def declared_methods(function: AppFunction) -> frozenset[str] | None:
    """The methods the binding allows, upper-case; None for every method."""
    methods = getattr(function.trigger, "methods", None)
    # The decorators take both enums (func.HttpMethod.GET) and plain strings.
    return frozenset(str(getattr(m, "value", m)).upper() for m in methods) if methods else None


class _Route:
    """The functions sharing one path, by the methods each declares (disjoint)."""

    def __init__(self, path: str) -> None:
        self.path = path
        # The function for each declared method, and the one declared for every method (None
        # where there is none): looked up on every request.
        self.by_method: dict[str, AppFunction] = {}
        self.for_any_method: AppFunction | None = None

    def add(self, methods: frozenset[str] | None, function: AppFunction) -> None:
        overlapping = self.by_method if methods is None else methods & self.by_method.keys()
        other = self.for_any_method or next((self.by_method[m] for m in overlapping), None)
        if other is not None:
            raise ValueError(
                f"Functions {other.name!r} and {function.name!r} both serve {self.path} "
                "for the same HTTP methods"
            )
        if methods is None:
            self.for_any_method = function
        else:
            self.by_method.update(dict.fromkeys(methods, function))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        function = self.by_method.get(request.method, self.for_any_method)
        if function is None:
            allowed = sorted(self.by_method)
            raise web.HTTPMethodNotAllowed(
                request.method,
                allowed,
                text=f"{request.method} is not allowed here; use {', '.join(allowed)}.",
            )
        function_request = await to_function_request(request)
        try:
            return to_web_response(await function.call(function_request))
        except Exception:
            # The traceback goes to the log only; the client gets a generic problem document.
            logger.exception("Function %r failed", function.name)
            raise web.HTTPInternalServerError(
                text=f"Function {function.name!r} failed; see the local host's log."
            ) from None


def attach_http_functions(
    web_app: web.Application, functions: Sequence[AppFunction], route_prefix: str
) -> list[str]:
    """Route the functions; return their lines for the start-up listing (``{base}``: the URL)."""
    routes: dict[str, _Route] = {}
    listing = []
    for function in functions:
        function.check_takes_only_the_trigger(also_allowed=("http",))
        path, methods = route_path(function, route_prefix), declared_methods(function)
        routes.setdefault(path, _Route(path)).add(methods, function)
        label = ",".join(sorted(methods)) if methods else "*"
        listing.append(f"{function.name}: [{label}] {{base}}{path}")
    # Literal paths first: aiohttp tries resources in the order they were added.
    for path in sorted(routes, key=lambda path: "{" in path):
        web_app.router.add_route("*", path, routes[path].handle)
    return listing


class FunctionRequest(func.HttpRequest):
    """The ``func.HttpRequest`` the host hands a function, its ``url`` built when first read:
    building it with yarl costs more than the rest of the request's conversion together, and
    functions seldom read it (ours, only to log an error)."""

    def __init__(self, request: web.Request, body: bytes) -> None:
        super().__init__(
            method=request.method,
            url="",
            headers=_join_repeated(
                (name.lower(), value) for name, value in request.headers.items()
            ),
            params=_join_repeated(request.query.items()),
            route_params=dict(request.match_info),
            body=body,
        )
        self._web_request = request

    @property
    def url(self) -> str:
        return str(self._web_request.url)


async def to_function_request(request: web.Request) -> func.HttpRequest:
    """The ``func.HttpRequest`` the host would hand the function (the body as sent, encoded or
    not: the app decides what it accepts)."""
    return FunctionRequest(request, await read_body(request))


def to_web_response(result: object) -> web.Response:
    """The answer for what the function returned, as the worker converts it: a ``str`` is a 200
    text body, and an explicit Content-Type header wins over ``mimetype``."""
    if isinstance(result, str):
        result = func.HttpResponse(result)
    if not isinstance(result, func.HttpResponse):
        raise TypeError(
            f"an HTTP function must return func.HttpResponse or str, not {type(result).__name__}"
        )
    headers = CIMultiDict(result.headers.items())
    if "Content-Type" not in headers:
        text = result.mimetype.startswith("text/")
        headers["Content-Type"] = (
            f"{result.mimetype}; charset={result.charset}" if text else result.mimetype
        )
    return web.Response(status=result.status_code, body=result.get_body(), headers=headers)


def _join_repeated(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Repeated keys become one comma-separated value, as in the Functions host."""
    joined: dict[str, str] = {}
    for key, value in pairs:
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined
