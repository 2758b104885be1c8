"""Serve ``httpTrigger`` functions as aiohttp routes, with method checks like the host's."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from local_host.discovery import DiscoveredFunction, check_takes_only_the_trigger
from local_host.http_conversion import to_function_request, to_web_response
from local_host.http_routes import DEFAULT_ROUTE_PREFIX, route_paths
from local_host.invocation import call_user_function

logger = logging.getLogger(__name__)

HTTP_TRIGGER = "httpTrigger"


@dataclass(frozen=True)
class HttpFunction:
    """What an ``httpTrigger`` binding declares about one function."""

    name: str
    route: str
    methods: frozenset[str] | None  # None: every method
    auth_level: str
    request_parameter: str
    user_function: Callable[..., Any]

    @classmethod
    def from_discovered(cls, function: DiscoveredFunction) -> HttpFunction:
        trigger = function.trigger
        methods = getattr(trigger, "methods", None)
        return cls(
            name=function.name,
            route=(getattr(trigger, "route", None) or function.name).strip("/"),
            methods=frozenset(_method_name(m) for m in methods) if methods else None,
            auth_level=_enum_value(getattr(trigger, "auth_level", None) or "function"),
            request_parameter=trigger.name,
            user_function=function.user_function,
        )

    def accepts(self, method: str) -> bool:
        return self.methods is None or method in self.methods

    def shares_methods_with(self, other: HttpFunction) -> bool:
        if self.methods is None or other.methods is None:
            return True
        return bool(self.methods & other.methods)

    def method_label(self) -> str:
        return ",".join(sorted(self.methods)) if self.methods else "*"


@dataclass
class _RouteGroup:
    """The functions sharing one aiohttp path; they must declare disjoint methods."""

    path: str
    functions: list[HttpFunction] = field(default_factory=list)

    def add(self, function: HttpFunction) -> None:
        for other in self.functions:
            if other.shares_methods_with(function):
                raise ValueError(
                    f"Functions {other.name!r} and {function.name!r} both serve "
                    f"{self.path} for the same HTTP methods"
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
        return await _invoke(function, request)


async def _invoke(function: HttpFunction, request: web.Request) -> web.StreamResponse:
    function_request = await to_function_request(request)
    try:
        result = await call_user_function(
            function.user_function, **{function.request_parameter: function_request}
        )
        return to_web_response(result)
    except Exception:
        # The traceback goes to the log only; clients get a generic problem document.
        logger.exception("Function %r failed", function.name)
        raise web.HTTPInternalServerError(
            text=f"Function {function.name!r} failed; see the local host's log."
        ) from None


class HttpTriggerAdapter:
    """Routes ``httpTrigger`` functions under the host.json route prefix."""

    trigger_type = HTTP_TRIGGER

    def __init__(self, route_prefix: str = DEFAULT_ROUTE_PREFIX) -> None:
        self.route_prefix = route_prefix.strip("/")

    def attach(self, web_app: web.Application, functions: Sequence[DiscoveredFunction]) -> None:
        groups: dict[str, _RouteGroup] = {}
        precedence: dict[str, tuple[int, ...]] = {}
        for discovered in functions:
            check_takes_only_the_trigger(discovered, also_allowed=("http",))
            function = HttpFunction.from_discovered(discovered)
            if function.auth_level != "anonymous":
                logger.info(
                    "%s: auth level %r is not enforced locally (Core Tools does not either)",
                    function.name,
                    function.auth_level,
                )
            for route_path in route_paths(function.route, self.route_prefix):
                groups.setdefault(route_path.path, _RouteGroup(route_path.path)).add(function)
                precedence[route_path.path] = route_path.precedence
        # aiohttp tries resources under the same prefix in the order they were added, so add
        # the most specific first.
        for path in sorted(groups, key=precedence.__getitem__):
            web_app.router.add_route("*", path, groups[path].handle)

    def describe(self, function: DiscoveredFunction, base_url: str) -> str:
        http_function = HttpFunction.from_discovered(function)
        url = "/".join(part for part in (base_url, self.route_prefix, http_function.route) if part)
        return f"{function.name}: [{http_function.method_label()}] {url}"


def _method_name(method: object) -> str:
    return _enum_value(method).upper()


def _enum_value(value: object) -> str:
    # The decorators accept both enums (func.HttpMethod.GET) and plain strings.
    return str(getattr(value, "value", value))
