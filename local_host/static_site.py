"""Serve a Static Web Apps folder beside the functions, as the Static Web Apps CLI does.

The folder's files are served at ``/`` with its ``staticwebapp.config.json`` applied (headers,
navigation fallback, MIME types: see ``static_site_config``), so the site and ``/api`` share one
origin, as they do in Azure. Paths under the functions' route prefix never reach the site: the
API answers exactly as it does without one.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from local_host.static_site_config import CONFIG_FILE, SiteConfig

SITE_METHODS = ("GET", "HEAD")
INDEX_FILE = "index.html"


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

    def attach(self, web_app: web.Application) -> None:
        # Added after the functions' routes: aiohttp tries those first, so they stay untouched.
        web_app.router.add_route("*", "/{path:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if self._is_api_path(path):
            raise web.HTTPNotFound  # the same answer as for an unknown function without a site
        if request.method not in SITE_METHODS:
            raise web.HTTPMethodNotAllowed(
                request.method,
                SITE_METHODS,
                text=f"The site's files are read-only; use {', '.join(SITE_METHODS)}.",
            )
        file = self._file_at(path)
        headers = self.config.headers_for(*_route_paths(path, file))
        fallback = self.config.fallback
        if file is None and fallback is not None and fallback.applies_to(path):
            file = self._file_at(fallback.rewrite)
        if file is None:
            raise web.HTTPNotFound(text="The site has no such file.", headers=headers)
        mime_type = self.config.mime_type_for(file)
        if mime_type is not None:
            headers["Content-Type"] = mime_type
        return web.FileResponse(file, headers=headers)

    def _is_api_path(self, path: str) -> bool:
        path = path.lower()
        return path == self._api_prefix or path.startswith(self._api_prefix + "/")

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


def _route_paths(path: str, file: Path | None) -> tuple[str, ...]:
    """What routes are matched against: the path, and for a folder also its index.html's path
    (in Azure a route for ``/docs/index.html`` applies to ``/docs/`` too)."""
    if file is None or file.name != INDEX_FILE or path.endswith("/" + INDEX_FILE):
        return (path,)
    return (path, path.rstrip("/") + "/" + INDEX_FILE)
