"""Load app settings from ``local.settings.json`` into the environment, as Core Tools does."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path

SETTINGS_FILES = ("local.settings.json", "local.settings.example.json")

# The Functions host's own limit on request bodies, and its default (100 MB).
BODY_SIZE_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"
DEFAULT_BODY_SIZE_LIMIT = 104_857_600

_SETTING_REFERENCE = re.compile(r"%([^%]+)%")


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


def resolve_setting_references(text: str, environ: Mapping[str, str] = os.environ) -> str:
    """Replace each ``%NAME%`` in a binding property with the app setting ``NAME``.

    The host refuses a function whose reference does not resolve, and so does this.
    """

    def setting_value(reference: re.Match[str]) -> str:
        name = reference.group(1)
        if not environ.get(name):
            raise ValueError(f"%{name}% does not resolve to a value: app setting {name} is not set")
        return environ[name]

    return _SETTING_REFERENCE.sub(setting_value, text)
