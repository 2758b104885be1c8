"""Turn Azure Functions route templates into aiohttp resource paths.

Azure uses ASP.NET Core route templates (``items/{id:int?}``, ``files/{*path}``); aiohttp
has plain ``{name}`` and ``{name:regex}`` segments and no optional ones, so an optional
trailing segment becomes one aiohttp path with it and one without it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

logger = logging.getLogger(__name__)

DEFAULT_ROUTE_PREFIX = "api"

# Regexes for the ASP.NET route constraints that decide whether a URL matches.
_CONSTRAINT_PATTERNS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "float": r"-?\d+(?:\.\d+)?",
    "double": r"-?\d+(?:\.\d+)?",
    "decimal": r"-?\d+(?:\.\d+)?",
    "bool": r"(?i:true|false)",
    "alpha": r"[A-Za-z]+",
    "guid": r"[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}",
}
_CATCH_ALL_PATTERN = r".*"
_PARAMETER = re.compile(r"\{([^{}]+)\}")

# ASP.NET route precedence: literal segments win over constrained parameters, which win
# over plain parameters, which win over catch-alls.
_LITERAL, _CONSTRAINED, _PLAIN, _CATCH_ALL = range(4)


@dataclass(frozen=True)
class RoutePath:
    """One aiohttp path for a route template, with its ASP.NET matching precedence."""

    path: str
    precedence: tuple[int, ...]


@dataclass(frozen=True)
class _Segment:
    aiohttp_text: str
    rank: int
    optional: bool


def route_paths(template: str, route_prefix: str = DEFAULT_ROUTE_PREFIX) -> list[RoutePath]:
    """The aiohttp paths that together match what ``template`` matches under the prefix.

    ``items/{id:int?}`` under ``api`` gives ``/api/items/{id:-?\\d+}`` and ``/api/items``.
    """
    segments = [_parse_segment(text, template) for text in template.strip("/").split("/") if text]
    required_count = _required_segment_count(segments, template)
    prefix = [route_prefix.strip("/")] if route_prefix.strip("/") else []
    return [
        RoutePath(
            path="/" + "/".join(prefix + [segment.aiohttp_text for segment in kept]),
            precedence=tuple(segment.rank for segment in kept),
        )
        for kept in (segments[:count] for count in range(len(segments), required_count - 1, -1))
    ]


def _required_segment_count(segments: list[_Segment], template: str) -> int:
    """How many leading segments are mandatory; optional ones may only trail."""
    required_count = len(segments)
    while required_count and segments[required_count - 1].optional:
        required_count -= 1
    if any(segment.optional for segment in segments[:required_count]):
        raise ValueError(f"Route {template!r}: only trailing segments can be optional")
    return required_count


def _parse_segment(text: str, template: str) -> _Segment:
    specs = _PARAMETER.findall(text)
    if not specs:
        return _Segment(aiohttp_text=text, rank=_LITERAL, optional=False)
    is_whole_parameter = text == f"{{{specs[0]}}}"
    if not is_whole_parameter and any(_is_optional(spec) for spec in specs):
        raise ValueError(f"Route {template!r}: an optional parameter must fill its segment")
    parameters = [_parse_parameter(spec, template) for spec in specs]
    replacements = iter(aiohttp_text for aiohttp_text, _ in parameters)
    return _Segment(
        aiohttp_text=_PARAMETER.sub(lambda _: next(replacements), text),
        rank=max(rank for _, rank in parameters),
        optional=is_whole_parameter and _is_optional(specs[0]),
    )


def _is_optional(spec: str) -> bool:
    # A catch-all also matches nothing at all.
    return spec.endswith("?") or spec.startswith("*")


def _parse_parameter(spec: str, template: str) -> tuple[str, int]:
    """The aiohttp form of ``{spec}`` and its precedence rank."""
    if "=" in spec:
        raise ValueError(f"Route {template!r}: default values ({spec!r}) are not supported")
    if spec.startswith("*"):
        name = spec.lstrip("*").split(":")[0]
        return f"{{{name}:{_CATCH_ALL_PATTERN}}}", _CATCH_ALL
    name, *constraints = spec.rstrip("?").split(":")
    patterns = []
    for constraint in constraints:
        pattern = _CONSTRAINT_PATTERNS.get(constraint.lower())
        if pattern is None:
            logger.warning("Route %r: constraint %r is not enforced locally", template, constraint)
        else:
            patterns.append(pattern)
    if patterns:
        return f"{{{name}:{patterns[0]}}}", _CONSTRAINED
    return f"{{{name}}}", _PLAIN
