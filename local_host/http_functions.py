"""Serve ``httpTrigger`` functions as aiohttp routes under the host.json route prefix.

Route templates may have literal segments and plain ``{name}`` parameters, which is what the
app declares; constraints (``{id:int}``), optional (``{id?}``) and catch-all (``{*path}``)
parameters are refused at start-up rather than matched differently from Azure.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import azure.functions as func
from aiohttp import web
from multidict import CIMultiDict

from local_host.app_functions import AppFunction, call_user_function, check_takes_only_the_trigger
from local_host.http_guards import read_body

logger = logging.getLogger(__name__)

HTTP_TRIGGER = "httpTrigger"

_PLAIN_PARAMETER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


@dataclass(frozen=True)
class HttpFunction:
    """What an ``httpTrigger`` binding declares about one function."""

    function: AppFunction
    route: str
    methods: frozenset[str] | None  # None: every method

    @classmethod
    def from_app_function(cls, function: AppFunction) -> HttpFunction:
        methods = getattr(function.trigger, "methods", None)
        route = (getattr(function.trigger, "route", None) or function.name).strip("/")
        return cls(
            function=function,
            route=route,
            methods=frozenset(_enum_value(m).upper() for m in methods) if methods else None,
        )

    def path(self, route_prefix: str) -> str:
        """The aiohttp path of the route; a ValueError naming the function for other templates."""
        for segment in self.route.split("/"):
            if "{" in _PLAIN_PARAMETER.sub("", segment) or "}" in _PLAIN_PARAMETER.sub("", segment):
                raise ValueError(
                    f"{self.function.name}: route {self.route!r} has {segment!r}; the local host "
                    "serves literal segments and plain {name} parameters only (no constraints, "
                    "optional or catch-all parameters)"
                )
        return "/" + "/".join(part for part in (route_prefix.strip("/"), self.route) if part)

    def accepts(self, method: str) -> bool:
        return self.methods is None or method in self.methods

    def method_label(self) -> str:
        return ",".join(sorted(self.methods)) if self.methods else "*"


@dataclass
class _RouteGroup:
    """The functions sharing one path; they must declare disjoint methods."""

    path: str
    functions: list[HttpFunction] = field(default_factory=list)

    def add(self, function: HttpFunction) -> None:
        for other in self.functions:
            if (
                other.methods is None
                or function.methods is None
                or other.methods & function.methods
            ):
                raise ValueError(
                    f"Functions {other.function.name!r} and {function.function.name!r} both "
                    f"serve {self.path} for the same HTTP methods"
                )
        self.functions.append(function)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        function = next((f for f in self.functions if f.accepts(request.method)), None)
        if function is None:
            allowed = sorted(method for f in self.functions for method in f.methods or ())
            raise web.HTTPMethodNotAllowed(
                request.method,
                allowed,
                text=f"{request.method} is not allowed here; use {', '.join(allowed)}.",
            )
        arguments = {function.function.trigger.name: await to_function_request(request)}
        try:
            result = await call_user_function(function.function.user_function, **arguments)
            return to_web_response(result)
        except Exception:
            # The traceback goes to the log only; clients get a generic problem document.
            logger.exception("Function %r failed", function.function.name)
            raise web.HTTPInternalServerError(
                text=f"Function {function.function.name!r} failed; see the local host's log."
            ) from None


def attach_http_functions(
    web_app: web.Application, functions: Sequence[AppFunction], route_prefix: str
) -> list[str]:
    """Route the functions; return their lines for the startup listing (``{base}`` = URL)."""
    groups: dict[str, _RouteGroup] = {}
    listing = []
    for function in functions:
        check_takes_only_the_trigger(function, also_allowed=("http",))
        http_function = HttpFunction.from_app_function(function)
        path = http_function.path(route_prefix)
        groups.setdefault(path, _RouteGroup(path)).add(http_function)
        listing.append(f"{function.name}: [{http_function.method_label()}] {{base}}{path}")
    # Literal paths first: aiohttp tries resources in the order they were added.
    for path in sorted(groups, key=lambda path: "{" in path):
        web_app.router.add_route("*", path, groups[path].handle)
    return listing


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
    """The aiohttp response for what an HTTP function returned, as the worker converts it:
    a ``str`` is a 200 text body, and an explicit Content-Type header wins over ``mimetype``."""
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


def _enum_value(value: object) -> str:
    # The decorators accept both enums (func.HttpMethod.GET) and plain strings.
    return str(getattr(value, "value", value))
