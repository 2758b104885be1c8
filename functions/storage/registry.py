"""The model registry kept in one blob container (contracts.md section 2).

incoming/<version>.onnx   drop zone
versions/<version>.onnx   accepted versions, immutable once written
current.json              the pointer to the served version, changed only with ETag checks
rejected/<version>.json   why a dropped file was refused
audit/promotions.jsonl    one line per decision, an append blob never rewritten

Here: the layout, the names and their checks, with no Azure SDK to load. The operations on the
container, `ModelRegistry` and `ClaimKeeper`, are in model_registry.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from functions.storage.errors import InvalidName

if TYPE_CHECKING:
    from azure.storage.blob import BlobLeaseClient

INCOMING = "incoming/"
VERSIONS = "versions/"
REJECTED = "rejected/"
POINTER = "current.json"
AUDIT = "audit/promotions.jsonl"
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # use fullmatch: no "\n"
PROMOTED = "promoted"  # version metadata: "pending" until current.json points at it, then "true"
AUDIT_TAIL_BYTES = 256 * 1024
CLAIM_SECONDS = 60  # a claim's lease; renewed while the decision runs (see ClaimKeeper)
ATTEMPTS = "attempts"  # incoming metadata: how often a decision on this file was started
# incoming metadata: how many of those ended in an error the promoter caught (and when the
# first did): these were not crashes or hangs
FAILED_ATTEMPTS = "failed_attempts"
FIRST_FAILED_AT = "first_failed_at"
UNDECIDED_ERRORS = "undecided_errors"  # incoming metadata: why earlier attempts broke off
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
MAX_KEPT_ERRORS = 5
MAX_ERROR_CHARS = 300


def checked_version(version: str) -> str:
    """The version itself, if VERSION_PATTERN allows it; InvalidName otherwise."""
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        raise InvalidName(
            f"version {_shown(version)} is not valid: 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return version


def incoming_version(name: str) -> str:
    """incoming/<version>.onnx -> <version>; InvalidName for any other name."""
    if not isinstance(name, str) or not name.endswith(".onnx"):
        raise InvalidName(f"{_shown(name)} does not end in .onnx; drop incoming/<version>.onnx")
    return checked_version(name.removesuffix(".onnx"))


def _shown(value: object) -> str:
    """A name quoted for a message or log: escaped, and cut short (it may come from anyone)."""
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


@dataclass(frozen=True)
class DroppedFile:
    name: str  # the path under incoming/, e.g. "v2.onnx"
    content: bytes  # empty when the file is over the size cap: it is never read
    size: int
    metadata: dict[str, str]  # as uploaded (sha256, signature), without the attempt records
    lease: BlobLeaseClient
    attempt: int = 1  # 1 for the first decision started on this file, 2 for the next, ...
    earlier_errors: tuple[str, ...] = ()  # why attempts before this one broke off, if known
    failed: int = 0  # earlier attempts that ended in an error the promoter caught
    first_failed_at: str | None = None  # when the first of those was noted (ISO 8601 UTC)

    @property
    def broken_off(self) -> int:
        """Earlier attempts that never reported back: the process crashed, hung or was killed."""
        return max(0, self.attempt - 1 - self.failed)


@dataclass(frozen=True)
class Pointer:
    """current.json. `damage` says why it cannot be used (not JSON, not an object, a field
    missing or malformed); `document` is then empty, and the pointer counts as absent for
    serving, while its ETag lets a promotion replace it."""

    document: dict
    etag: str
    damage: str | None = None

    @property
    def usable(self) -> bool:
        return self.damage is None


def pointer_from(content: bytes, etag: str) -> Pointer:
    """current.json's bytes read, checked: version and sha256 are what serving needs."""
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return Pointer({}, etag, f"{POINTER} is not valid JSON ({error})")
    if not isinstance(document, dict):
        return Pointer({}, etag, f"{POINTER} is not a JSON object")
    version, sha256 = document.get("version"), document.get("sha256")
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        return Pointer({}, etag, f"{POINTER} has no valid version: {_shown(version)}")
    if not isinstance(sha256, str) or not SHA256_PATTERN.fullmatch(sha256):
        return Pointer({}, etag, f"{POINTER} has no valid sha256: {_shown(sha256)}")
    return Pointer(document, etag)


def sha256_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def stored_gate_figures(metadata: dict[str, str]) -> dict:
    return json_or_none(metadata.get("gate")) or {}


def json_or_none(value: str | None) -> dict | None:
    """A metadata value that holds JSON, read; None when it is absent or unreadable."""
    try:
        return json.loads(value) if value else None
    except json.JSONDecodeError:
        return None


# The operations on the container (ModelRegistry, ClaimKeeper) load the Azure SDK, about a
# quarter of a second: they live in model_registry.py, loaded on first use, so that the layout
# above (which indexing the app and serving read) costs nothing. Their old names still work.
