"""Read the parts of ``host.json`` that change how the local host serves the app."""

from __future__ import annotations

import json
from pathlib import Path

from local_host.http_routes import DEFAULT_ROUTE_PREFIX


def read_route_prefix(app_root: Path) -> str:
    """``extensions.http.routePrefix`` from host.json; ``api`` when host.json omits it.

    An empty string is a valid prefix: the functions are then served from the site root.
    """
    host_json = app_root / "host.json"
    if not host_json.is_file():
        return DEFAULT_ROUTE_PREFIX
    config = json.loads(host_json.read_text(encoding="utf-8"))
    prefix = config.get("extensions", {}).get("http", {}).get("routePrefix", DEFAULT_ROUTE_PREFIX)
    return prefix.strip("/")
