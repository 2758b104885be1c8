"""Read ``staticwebapp.config.json``: the parts that decide how a local site is served.

Azure Static Web Apps applies ``globalHeaders`` to every file, then the ``headers`` of the first
entry of ``routes`` whose ``route`` matches the path (same names override, an empty value removes
a header), answers paths that are no file with ``navigationFallback.rewrite`` unless they match
one of its ``exclude`` patterns, and serves extensions listed in ``mimeTypes`` with that type.
Route patterns end in ``*`` for "anything below" and may carry ``{a,b}`` alternatives
(``/images/*.{png,jpg}``); they match case-insensitively, as in Azure.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

logger = logging.getLogger(__name__)

CONFIG_FILE = "staticwebapp.config.json"
SUPPORTED_KEYS = frozenset({"globalHeaders", "routes", "navigationFallback", "mimeTypes"})
SUPPORTED_ROUTE_KEYS = frozenset({"route", "headers"})


@dataclass(frozen=True)
class RouteRule:
    """One entry of ``routes``: the headers it adds to the paths it matches."""

    pattern: re.Pattern[str]
    headers: Mapping[str, str]


@dataclass(frozen=True)
class NavigationFallback:
    """``navigationFallback``: the file served for paths that are no file, and the exceptions."""

    rewrite: str
    exclude: tuple[re.Pattern[str], ...] = ()

    def applies_to(self, path: str) -> bool:
        return not any(pattern.fullmatch(path) for pattern in self.exclude)


@dataclass(frozen=True)
class SiteConfig:
    global_headers: Mapping[str, str] = field(default_factory=dict)
    routes: tuple[RouteRule, ...] = ()
    fallback: NavigationFallback | None = None
    mime_types: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_folder(cls, folder: Path) -> SiteConfig:
        """The folder's config file, or no rules at all when it has none."""
        config_file = folder / CONFIG_FILE
        if not config_file.is_file():
            return cls()
        return cls.from_document(json.loads(config_file.read_text(encoding="utf-8")))

    @classmethod
    def from_document(cls, document: Mapping[str, object]) -> SiteConfig:
        for key in sorted(set(document) - SUPPORTED_KEYS - {"$schema"}):
            logger.warning("%s: %r is not applied by the local host", CONFIG_FILE, key)
        mime_types = document.get("mimeTypes", {})
        return cls(
            global_headers=MappingProxyType(dict(document.get("globalHeaders", {}))),
            routes=tuple(_route_rule(entry) for entry in document.get("routes", [])),
            fallback=_fallback(document.get("navigationFallback")),
            mime_types=MappingProxyType(
                {extension.lower(): kind for extension, kind in mime_types.items()}
            ),
        )

    def headers_for(self, *paths: str) -> dict[str, str]:
        """``globalHeaders``, overridden by the headers of the first route matching any of
        ``paths`` (a folder's path and its index.html's). Names compare case-insensitively;
        an empty value removes the header, as in Azure."""
        merged = {name.lower(): (name, value) for name, value in self.global_headers.items()}
        rule = next(
            (rule for rule in self.routes if any(rule.pattern.fullmatch(p) for p in paths)), None
        )
        if rule is not None:
            merged.update({name.lower(): (name, value) for name, value in rule.headers.items()})
        return {name: value for name, value in merged.values() if value}

    def mime_type_for(self, file: Path) -> str | None:
        return self.mime_types.get(file.suffix.lower())


def route_pattern(route: str) -> re.Pattern[str]:
    """A Static Web Apps route (``/js/*``, ``/images/*.{png,jpg}``) as a regex for whole paths."""
    pieces = re.split(r"(\*|\{[^{}]*\})", route)
    return re.compile("".join(_regex_of(piece) for piece in pieces), re.IGNORECASE)


def _regex_of(piece: str) -> str:
    if piece == "*":
        return ".*"
    if piece.startswith("{"):
        return "(?:" + "|".join(re.escape(option) for option in piece[1:-1].split(",")) + ")"
    return re.escape(piece)


def _route_rule(entry: Mapping[str, object]) -> RouteRule:
    for key in sorted(set(entry) - SUPPORTED_ROUTE_KEYS):
        logger.warning(
            "%s: %r of route %r is not applied locally", CONFIG_FILE, key, entry["route"]
        )
    return RouteRule(
        pattern=route_pattern(entry["route"]),
        headers=MappingProxyType(dict(entry.get("headers", {}))),
    )


def _fallback(entry: Mapping[str, object] | None) -> NavigationFallback | None:
    if not entry:
        return None
    return NavigationFallback(
        rewrite=entry["rewrite"],
        exclude=tuple(route_pattern(text) for text in entry.get("exclude", [])),
    )
