"""Serve a Static Web Apps folder beside the functions, as the Static Web Apps CLI does.

The folder's files are served at ``/``, so the site and the API share one origin, as in Azure,
with what the app's ``staticwebapp.config.json`` uses: ``globalHeaders`` on every answer, then
the ``headers`` of the first ``routes`` entry matching the path (an empty value removes a
header), ``navigationFallback`` for paths that are no file unless ``exclude`` matches, and
``mimeTypes``. Route patterns may end in ``*`` and carry ``{a,b}`` alternatives; they match
case-insensitively. Paths under the functions' route prefix never reach the site.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from aiohttp import web

CONFIG_FILE = "staticwebapp.config.json"
SITE_METHODS = ("GET", "HEAD")
INDEX_FILE = "index.html"


def route_pattern(route: str) -> re.Pattern[str]:
    """A Static Web Apps route (``/js/*``, ``/images/*.{png,jpg}``) as a regex for whole paths."""
    pieces = re.split(r"(\*|\{[^{}]*\})", route)
    regex = "".join(
        ".*"
        if piece == "*"
        else "(?:" + "|".join(map(re.escape, piece[1:-1].split(","))) + ")"
        if piece.startswith("{")
        else re.escape(piece)
        for piece in pieces
    )
    return re.compile(regex, re.IGNORECASE)


class SiteConfig:
    """The parts of ``staticwebapp.config.json`` that decide how a local site is served."""

    def __init__(self, document: dict) -> None:
        self.global_headers: dict[str, str] = dict(document.get("globalHeaders", {}))
        self.routes = [
            (route_pattern(entry["route"]), dict(entry.get("headers", {})))
            for entry in document.get("routes", [])
        ]
        fallback = document.get("navigationFallback") or {}
        self.fallback_rewrite: str | None = fallback.get("rewrite")
        self.fallback_exclude = [route_pattern(text) for text in fallback.get("exclude", [])]
        self.mime_types = {ext.lower(): kind for ext, kind in document.get("mimeTypes", {}).items()}

    @classmethod
    def from_folder(cls, folder: Path) -> SiteConfig:
        """The folder's config file, or no rules at all when it has none."""
        config_file = folder / CONFIG_FILE
        if not config_file.is_file():
            return cls({})
        return cls(json.loads(config_file.read_text(encoding="utf-8")))

    def headers_for(self, path: str) -> dict[str, str]:
        """``globalHeaders``, overridden (names case-insensitively) by the first matching route."""
        merged = {name.lower(): (name, value) for name, value in self.global_headers.items()}
        headers = next((headers for pattern, headers in self.routes if pattern.fullmatch(path)), {})
        merged.update({name.lower(): (name, value) for name, value in headers.items()})
        return {name: value for name, value in merged.values() if value}

    def fallback_for(self, path: str) -> str | None:
        """The file to serve for a path that is no file, if the fallback applies to it."""
        if any(pattern.fullmatch(path) for pattern in self.fallback_exclude):
            return None
        return self.fallback_rewrite


class StaticSite:
    """The files of ``folder``, served at ``/`` around the functions' ``route_prefix``."""

    def __init__(self, folder: Path, route_prefix: str) -> None:
        if not route_prefix.strip("/"):
            raise ValueError(
                "a site needs the functions under a route prefix "
                "(host.json extensions.http.routePrefix), or the two would share every path"
            )
        self.folder = folder.resolve()
        self.config = SiteConfig.from_folder(self.folder)
        self._api_prefix = "/" + route_prefix.strip("/").lower()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.lower() == self._api_prefix or path.lower().startswith(self._api_prefix + "/"):
            raise web.HTTPNotFound  # the same answer as for an unknown function without a site
        if request.method not in SITE_METHODS:
            raise web.HTTPMethodNotAllowed(
                request.method,
                SITE_METHODS,
                text=f"The site's files are read-only; use {', '.join(SITE_METHODS)}.",
            )
        headers = self.config.headers_for(path)
        file = self._file_at(path)
        if file is None and (fallback := self.config.fallback_for(path)) is not None:
            file = self._file_at(fallback)
        if file is None:
            raise web.HTTPNotFound(text="The site has no such file.", headers=headers)
        if mime_type := self.config.mime_types.get(file.suffix.lower()):
            headers["Content-Type"] = mime_type
        return web.FileResponse(file, headers=headers)

    def _file_at(self, path: str) -> Path | None:
        """The file a URL path names (a folder means its index.html), or None."""
        try:
            candidate = (self.folder / path.lstrip("/")).resolve()
            if not candidate.is_relative_to(self.folder):
                return None
            if candidate.is_dir():
                candidate = candidate / INDEX_FILE
            is_file = candidate.is_file()
        except (OSError, ValueError):
            # A name the file system refuses (a null byte, too long) names no file either.
            return None
        # The config file is read by the platform, never served (as in Azure).
        if not is_file or candidate == self.folder / CONFIG_FILE:
            return None
        return candidate
