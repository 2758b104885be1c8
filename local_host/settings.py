"""What the local host reads of the app: its ``app``, local.settings.json and host.json."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

import azure.functions as func

# host.json, local.settings.json, function_app.py and the site's folder live at the repository root.
APP_ROOT = Path(__file__).resolve().parent.parent

SETTINGS_FILES = ("local.settings.json", "local.settings.example.json")
DEFAULT_ROUTE_PREFIX = "api"

# The Functions host's own limit on request bodies, and its default (100 MB).
BODY_SIZE_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"
DEFAULT_BODY_SIZE_LIMIT = 104_857_600

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def load_local_settings(
    app_root: Path, environ: MutableMapping[str, str] = os.environ
) -> Path | None:
    """Copy the file's ``Values`` into ``environ``; return the file used, or None.

    ``local.settings.json`` is git-ignored, so a fresh checkout falls back to the committed
    example. Variables already set win, so a shell can override any setting for one run.
    """
    settings_file = local_settings_file(app_root)
    if settings_file is None:
        return None
    values = json.loads(settings_file.read_text(encoding="utf-8")).get("Values", {})
    for name, value in values.items():
        # Environment variables are strings; keep JSON spelling for numbers and booleans.
        environ.setdefault(name, value if isinstance(value, str) else json.dumps(value))
    return settings_file


def local_settings_file(app_root: Path) -> Path | None:
    """``local.settings.json``, else the committed example, else None."""
    return next((app_root / name for name in SETTINGS_FILES if (app_root / name).is_file()), None)


def host_cors_origins(settings_file: Path | None) -> list[str]:
    """The origins ``Host.CORS`` allows (``*`` for any), as Core Tools reads them; [] if unset."""
    if settings_file is None:
        return []
    host = json.loads(settings_file.read_text(encoding="utf-8")).get("Host", {})
    return [origin.strip() for origin in str(host.get("CORS") or "").split(",") if origin.strip()]


def request_body_limit(environ: Mapping[str, str] = os.environ) -> int:
    """The largest request body the host reads, in bytes (app setting, as in Azure)."""
    value = environ.get(BODY_SIZE_LIMIT_SETTING) or str(DEFAULT_BODY_SIZE_LIMIT)
    if not value.isdigit() or int(value) <= 0:
        raise ValueError(f"app setting {BODY_SIZE_LIMIT_SETTING} must be a number of bytes")
    return int(value)


def read_route_prefix(app_root: Path) -> str:
    """``extensions.http.routePrefix`` from host.json; ``api`` when host.json omits it.
    An empty prefix is valid: the functions are then served from the site root."""
    host_json = app_root / "host.json"
    if not host_json.is_file():
        return DEFAULT_ROUTE_PREFIX
    config = json.loads(host_json.read_text(encoding="utf-8"))
    prefix = config.get("extensions", {}).get("http", {}).get("routePrefix", DEFAULT_ROUTE_PREFIX)
    return prefix.strip("/")


def configure_logging() -> None:
    """INFO to stderr, without the Azure SDK's log of every storage request and response."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    # Its INFO lines are whole request dumps, several per poll of the Event Grid stand-in.
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)


def load_function_app(module_name: str) -> func.FunctionApp:
    """Import ``module_name`` from the repository root and return its ``app``."""
    sys.path.insert(0, str(APP_ROOT))
    function_app = getattr(importlib.import_module(module_name), "app", None)
    if not isinstance(function_app, func.FunctionApp):
        raise SystemExit(f"{module_name}.app is not an azure.functions.FunctionApp")
    return function_app
