"""What the local host reads of the app folder: local.settings.json and host.json."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

# host.json, local.settings.json, function_app.py and the site live at the repository root.
APP_ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILES = ("local.settings.json", "local.settings.example.json")
DEFAULT_ROUTE_PREFIX = "api"
# The Functions host's limit on request bodies, and its default (100 MB).
BODY_SIZE_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"
DEFAULT_BODY_SIZE_LIMIT = 104_857_600


def load_local_settings(app_root: Path, environ: MutableMapping = os.environ) -> Path | None:
    """Copy the settings file's ``Values`` into ``environ`` (variables already set win, so a
    shell can override a setting); return the file, the committed example when
    ``local.settings.json`` (git-ignored) is missing, or None."""
    found = [app_root / name for name in SETTINGS_FILES if (app_root / name).is_file()]
    if not found:
        return None
    for name, value in json.loads(found[0].read_text(encoding="utf-8")).get("Values", {}).items():
        environ.setdefault(name, value if isinstance(value, str) else json.dumps(value))
    return found[0]


def host_cors_origins(settings_file: Path | None) -> list[str]:
    """The origins ``Host.CORS`` allows (``*``: any), as Core Tools reads them; [] if unset."""
    if settings_file is None:
        return []
    host = json.loads(settings_file.read_text(encoding="utf-8")).get("Host", {})
    return [origin.strip() for origin in str(host.get("CORS") or "").split(",") if origin.strip()]


def request_body_limit(environ: Mapping[str, str] = os.environ) -> int:
    """The largest request body the host reads, in bytes (the app setting, as in Azure)."""
    value = environ.get(BODY_SIZE_LIMIT_SETTING) or str(DEFAULT_BODY_SIZE_LIMIT)
    if not value.isdigit() or int(value) <= 0:
        raise ValueError(f"app setting {BODY_SIZE_LIMIT_SETTING} must be a number of bytes")
    return int(value)


def read_route_prefix(app_root: Path) -> str:
    """``extensions.http.routePrefix`` of host.json (``api`` when absent; empty is valid)."""
    host_json = app_root / "host.json"
    config = json.loads(host_json.read_text(encoding="utf-8")) if host_json.is_file() else {}
    prefix = config.get("extensions", {}).get("http", {}).get("routePrefix", DEFAULT_ROUTE_PREFIX)
    return prefix.strip("/")
