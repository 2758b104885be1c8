"""A stand-in for Azure Static Web Apps: the site's folder served at ``/`` beside the functions, as
the Static Web Apps CLI does.

Of ``staticwebapp.config.json`` it applies what the site uses: ``globalHeaders``, then the
``headers`` of the first matching ``routes`` entry (an empty value removes a header),
``navigationFallback`` (unless ``exclude`` matches) and ``mimeTypes``. Routes may end in ``*``
and carry ``{a,b}`` alternatives, matched case-insensitively. The config file is never served.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from aiohttp import web

from local_host.server import LISTING_KEY

CONFIG_FILE = "staticwebapp.config.json"
SITE_METHODS = ("GET", "HEAD")


def attach_site(web_app: web.Application, folder: Path, route_prefix: str) -> None:
    """Serve ``folder`` at ``/``, after the functions' routes (aiohttp tries them in order)."""
    site = StaticSite(folder, route_prefix)
    web_app[LISTING_KEY].append(f"Site: {{base}}/ (from {site.folder})")
    web_app.router.add_route("*", "/{path:.*}", site.handle)


def route_pattern(route: str) -> re.Pattern[str]:
    """A Static Web Apps route (``/js/*``, ``/images/*.{png,jpg}``) as a regex for whole paths."""
    pieces = re.split(r"(\*|\{[^{}]*\})", route)
    return re.compile(
        "".join(
            ".*"
            if piece == "*"
            else "(?:" + "|".join(map(re.escape, piece[1:-1].split(","))) + ")"
            if piece.startswith("{")
            else re.escape(piece)
            for piece in pieces
        ),
        re.IGNORECASE,
    )


class StaticSite:
    """The files of ``folder`` at ``/``, leaving paths under the functions' ``route_prefix``."""

    def __init__(self, folder: Path, route_prefix: str) -> None:
        if not route_prefix.strip("/"):
            raise ValueError(
                "a site needs the functions under a route prefix "
                "(host.json extensions.http.routePrefix), or the two would share every path"
            )
        self.folder = folder.resolve()
        self._api_prefix = "/" + route_prefix.strip("/").lower()
        config_file = self.folder / CONFIG_FILE
        config = (
            json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        )
        self.global_headers = dict(config.get("globalHeaders", {}))
        self.routes = [
            (route_pattern(r["route"]), r.get("headers", {})) for r in config.get("routes", [])
        ]
        fallback = config.get("navigationFallback") or {}
        self.fallback = fallback.get("rewrite")
        self.fallback_exclude = [route_pattern(text) for text in fallback.get("exclude", [])]
        self.mime_types = {ext.lower(): kind for ext, kind in config.get("mimeTypes", {}).items()}

    def headers_for(self, path: str) -> dict[str, str]:
        """``globalHeaders``, overridden (names case-insensitively) by the first matching route."""
        route_headers = next((h for pattern, h in self.routes if pattern.fullmatch(path)), {})
        merged = {name.lower(): (name, value) for name, value in self.global_headers.items()}
        merged.update({name.lower(): (name, value) for name, value in route_headers.items()})
        return {name: value for name, value in merged.values() if value}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.lower() == self._api_prefix or path.lower().startswith(self._api_prefix + "/"):
            raise web.HTTPNotFound  # as for an unknown function without a site
        if request.method not in SITE_METHODS:
            raise web.HTTPMethodNotAllowed(
                request.method,
                SITE_METHODS,
                text="The site's files are read-only; use GET, HEAD.",
            )
        headers = self.headers_for(path)
        file = self._file_at(path)
        if (
            file is None
            and self.fallback
            and not any(p.fullmatch(path) for p in self.fallback_exclude)
        ):
            file = self._file_at(self.fallback)
        if file is None:
            raise web.HTTPNotFound(text="The site has no such file.", headers=headers)
        if mime_type := self.mime_types.get(file.suffix.lower()):
            headers["Content-Type"] = mime_type
        return web.FileResponse(file, headers=headers)

    def _file_at(self, path: str) -> Path | None:
        """The file a URL path names (a folder: its index.html), or None."""
        try:
            file = (self.folder / path.lstrip("/")).resolve()
            file = file / "index.html" if file.is_dir() else file
            inside = file.is_relative_to(self.folder) and file.is_file()
        except (
            OSError,
            ValueError,
        ):  # a name the file system refuses names no file either
            return None
        return file if inside and file != self.folder / CONFIG_FILE else None
