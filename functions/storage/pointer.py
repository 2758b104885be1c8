"""current.json, the pointer to the served version (contracts.md section 2): read and checked,
and swapped only with a write conditional on the ETag it was read with, so that two writers at
once (two promotions, a promotion and a rollback by serving) cannot interleave."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ResourceNotModifiedError,
)
from azure.storage.blob import ContainerClient, ContentSettings

from functions.storage.errors import PointerConflict
from functions.storage.names import VERSION_PATTERN, shown
from functions.storage.registry import POINTER

SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
JSON_CONTENT = ContentSettings(content_type="application/json")


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
        return Pointer({}, etag, f"{POINTER} has no valid version: {shown(version)}")
    if not isinstance(sha256, str) or not SHA256_PATTERN.fullmatch(sha256):
        return Pointer({}, etag, f"{POINTER} has no valid sha256: {shown(sha256)}")
    return Pointer(document, etag)


class PointerStore:
    """The operations on current.json, part of `ModelRegistry`."""

    container: ContainerClient

    def read_pointer(self) -> Pointer | None:
        """current.json, or None when there is none. A damaged one (not JSON, a field missing)
        comes back with its `damage` said and its ETag, never as an exception: it must not stop
        serving, the listing or a promotion, which replaces it."""
        try:
            download = self.container.download_blob(POINTER)
            return pointer_from(download.readall(), download.properties.etag)
        except ResourceNotFoundError:
            return None

    def read_pointer_if_changed(self, etag: str | None) -> tuple[bool, Pointer | None]:
        """A conditional read of current.json: (False, None) while it still has `etag`;
        otherwise (True, the pointer, or None when there is none). Damaged: as read_pointer."""
        try:
            if etag is None:
                download = self.container.download_blob(POINTER)
            else:
                download = self.container.download_blob(
                    POINTER, etag=etag, match_condition=MatchConditions.IfModified
                )
            return True, pointer_from(download.readall(), download.properties.etag)
        except (ResourceNotModifiedError, ResourceModifiedError):
            # Unchanged: a 304, or the 412 that Azurite answers to If-None-Match on a GET.
            return False, None
        except ResourceNotFoundError:
            return etag is not None, None

    def replace_pointer(self, document: dict, expected: Pointer | None) -> None:
        """Writes current.json only if nobody changed it since `expected` was read (or, with
        None, only if it still does not exist); PointerConflict otherwise."""
        body = json.dumps(document, indent=2).encode()
        blob = self.container.get_blob_client(POINTER)
        try:
            if expected is None:
                blob.upload_blob(body, overwrite=False, content_settings=JSON_CONTENT)
            else:
                blob.upload_blob(
                    body,
                    overwrite=True,
                    content_settings=JSON_CONTENT,
                    etag=expected.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError) as error:
            raise PointerConflict(
                "current.json changed while this promotion was deciding"
            ) from error
