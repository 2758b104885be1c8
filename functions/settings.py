"""Every app setting the code reads, read here and nowhere else (contracts.md section 3)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import cache

STORAGE_SETTING = "MODELS_STORAGE"
CONTAINER_SETTING = "MODELS_CONTAINER"
SIGNING_KEY_SETTING = "MODEL_SIGNING_KEY"
FEEDBACK_CONTAINER_SETTING = "FEEDBACK_CONTAINER"
INFERENCE_THREADS_SETTING = "INFERENCE_THREADS"
MAX_INFERENCE_THREADS = 64
DEFAULT_CONTAINER = "models"
DEFAULT_FEEDBACK_CONTAINER = "feedback"


class MissingSetting(RuntimeError):
    """A required setting is absent or malformed; the message names it."""


@dataclass(frozen=True)
class StorageConnection:
    """Either a connection string (Azurite, or a key) or an identity-based account URL."""

    connection_string: str | None = None
    blob_service_uri: str | None = None
    managed_identity_client_id: str | None = None


@dataclass(frozen=True)
class Settings:
    storage: StorageConnection
    container: str
    refresh_seconds: float
    min_accuracy: float
    max_regression: float
    signing_key: bytes | None
    feedback_container: str
    feedback_per_minute: float
    feedback_per_instance_per_minute: float
    feedback_per_instance_per_day: float


@cache
def settings() -> Settings:
    """Read once per process; a missing or malformed setting fails here, naming it."""
    return Settings(
        storage=storage_connection(STORAGE_SETTING),
        container=models_container(),
        refresh_seconds=_number("MODEL_REFRESH_SECONDS", 10.0, minimum=0.1),
        min_accuracy=_number("PROMOTION_MIN_ACCURACY", 0.98, minimum=0.0, maximum=1.0),
        max_regression=_number("PROMOTION_MAX_REGRESSION", 0.005, minimum=0.0, maximum=1.0),
        signing_key=signing_key(),
        feedback_container=feedback_container(),
        feedback_per_minute=_number("FEEDBACK_PER_MINUTE", 10.0, minimum=0.1, maximum=6000.0),
        # Whoever sends them: what one instance writes is bounded (contracts.md section 4).
        feedback_per_instance_per_minute=_number(
            "FEEDBACK_PER_INSTANCE_PER_MINUTE", 600.0, minimum=1.0, maximum=60_000.0
        ),
        feedback_per_instance_per_day=_number(
            "FEEDBACK_PER_INSTANCE_PER_DAY", 20_000.0, minimum=1.0, maximum=10_000_000.0
        ),
    )


# The publisher and training read these (and the connection) alone: they need none of the others.
def models_container() -> str:
    return os.environ.get(CONTAINER_SETTING) or DEFAULT_CONTAINER


def feedback_container() -> str:
    return os.environ.get(FEEDBACK_CONTAINER_SETTING) or DEFAULT_FEEDBACK_CONTAINER


def inference_threads() -> int:
    """The inference pool's threads (functions/pools.py): the setting, else the cores this
    process may run on (empty: the cores)."""
    raw = os.environ.get(INFERENCE_THREADS_SETTING, "").strip()
    if not raw:
        return os.process_cpu_count() or 1
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_INFERENCE_THREADS:
        raise MissingSetting(
            f"{INFERENCE_THREADS_SETTING}={raw!r} must be a whole number from 1 to "
            f"{MAX_INFERENCE_THREADS} (or empty: one thread per core)"
        )
    return int(raw)


def signing_key() -> bytes | None:
    return (os.environ.get(SIGNING_KEY_SETTING) or "").encode() or None


def storage_connection(setting_name: str) -> StorageConnection:
    """The connection named `setting_name`, as the Functions host reads a binding's
    `connection`: `<name>` as a connection string, or the identity-based form used in Azure,
    `<name>__blobServiceUri` (+ `<name>__clientId` for a user-assigned identity)."""
    connection_string = os.environ.get(setting_name)
    if connection_string:
        return StorageConnection(connection_string=connection_string)
    uri = os.environ.get(f"{setting_name}__blobServiceUri")
    if uri:
        return StorageConnection(
            blob_service_uri=uri,
            managed_identity_client_id=os.environ.get(f"{setting_name}__clientId") or None,
        )
    raise MissingSetting(
        f"{setting_name} is not set: give a connection string (UseDevelopmentStorage=true "
        f"locally) or {setting_name}__blobServiceUri for a managed identity"
    )


def command_line_connection(
    connection_string: str | None, account_url: str | None
) -> StorageConnection:
    """The storage a command-line tool (the publisher, the feedback export) was pointed at: a
    connection string, else an account URL (signed in with DefaultAzureCredential), else the
    app's own MODELS_STORAGE setting; MissingSetting when none is given."""
    if connection_string:
        return StorageConnection(connection_string=connection_string)
    if account_url:
        return StorageConnection(blob_service_uri=account_url)
    return storage_connection(STORAGE_SETTING)


def _number(name: str, default: float, *, minimum: float, maximum: float | None = None) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise MissingSetting(f"{name}={raw!r} is not a number") from None
    # NaN compares false with everything: it would pass a range check and disable the gates.
    if not math.isfinite(value) or value < minimum or (maximum is not None and value > maximum):
        upper = f" and {maximum}" if maximum is not None else ""
        raise MissingSetting(f"{name}={raw!r} must be between {minimum}{upper}")
    return value
