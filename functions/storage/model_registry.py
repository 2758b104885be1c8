"""The model registry's operations on its blob container (contracts.md section 2): the drop zone
and its claims (claims.py), current.json (pointer.py), and here the accepted versions, the
rejections and the audit log. The layout is in registry.py, the name rules in names.py."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from functions.storage.claims import DropZone
from functions.storage.errors import VersionConflict
from functions.storage.names import checked_version
from functions.storage.pointer import JSON_CONTENT, PointerStore
from functions.storage.registry import (
    AUDIT,
    PROMOTED,
    REJECTED,
    VERSIONS,
    json_or_none,
    sha256_of,
)

AUDIT_TAIL_BYTES = 256 * 1024
# A write once a decision is made (the pointer moved): tried this often, then left to the log.
AFTER_THE_FACT_ATTEMPTS = 3
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredVersion:
    """versions/<version>.onnx as its metadata describes it."""

    sha256: str | None
    figures: dict  # the gate figures it was promoted with ({} when unreadable)
    promoted: bool  # current.json has pointed at it: an accepted version

    @property
    def accepted(self) -> bool:
        """An accepted version: served (promoted), its content known by its sha256."""
        return self.promoted and bool(self.sha256)


class ModelRegistry(DropZone, PointerStore):
    def __init__(self, container: ContainerClient) -> None:
        self.container = container

    def ensure_container(self) -> None:
        with contextlib.suppress(ResourceExistsError):  # the usual case
            self.container.create_container()

    # --- accepted versions ------------------------------------------------------------------

    def store_version(self, version: str, content: bytes, metadata: dict[str, str]) -> None:
        """Writes versions/<version>.onnx once; the same bytes again are fine, others refused."""
        blob = self.container.get_blob_client(_version_blob(version))
        try:
            blob.upload_blob(content, overwrite=False, metadata=metadata)
        except ResourceExistsError:
            existing = blob.get_blob_properties().metadata.get("sha256")
            if existing != sha256_of(content):
                raise VersionConflict(
                    f"version {version} exists with other content (sha256 {existing}); "
                    "versions are immutable: publish under a new version name"
                ) from None

    def stored_version(self, version: str) -> StoredVersion | None:
        """versions/<version>.onnx as its metadata describes it, or None when there is none."""
        try:
            blob = self.container.get_blob_client(_version_blob(version))
            properties = blob.get_blob_properties()
        except ResourceNotFoundError:
            return None
        metadata = properties.metadata or {}
        return StoredVersion(
            sha256=metadata.get("sha256"),
            figures=json_or_none(metadata.get("gate")) or {},
            promoted=metadata.get(PROMOTED) == "true",
        )

    def mark_promoted(self, version: str) -> None:
        """A stored version counts as accepted only once current.json has pointed at it: one that
        was stored and then refused (or whose decision broke off) is judged in full again."""
        blob = self.container.get_blob_client(_version_blob(version))
        metadata = dict(blob.get_blob_properties().metadata or {})
        if metadata.get(PROMOTED) != "true":
            blob.set_blob_metadata({**metadata, PROMOTED: "true"})

    def read_version(self, version: str) -> bytes:
        return self.container.download_blob(_version_blob(version)).readall()

    def versions(self) -> list[dict]:
        """The accepted versions with their sha256 and gate figures, oldest first."""
        found = []
        try:
            for blob in self.container.list_blobs(VERSIONS, include=["metadata"]):
                metadata = blob.metadata or {}
                if metadata.get(PROMOTED) != "true":
                    continue  # stored, but never served
                found.append(
                    {
                        "version": blob.name[len(VERSIONS) : -len(".onnx")],
                        "sha256": metadata.get("sha256"),
                        "size_bytes": blob.size,
                        "stored_at": blob.creation_time.isoformat() if blob.creation_time else None,
                        "gate": json_or_none(metadata.get("gate")),
                    }
                )
        except ResourceNotFoundError:  # no container yet: nothing was ever promoted
            return []
        return sorted(found, key=lambda version: version["stored_at"] or "")

    # --- decisions --------------------------------------------------------------------------

    def write_rejection(self, version: str, record: dict) -> None:
        """rejected/<version>.json; `version` may also be "invalid-name-<hash>"."""
        self.container.upload_blob(
            REJECTED + f"{checked_version(version)}.json",
            json.dumps(record, indent=2).encode(),
            overwrite=True,
            content_settings=JSON_CONTENT,
        )

    def has_rejection(self, version: str) -> bool:
        blob = self.container.get_blob_client(REJECTED + f"{checked_version(version)}.json")
        return blob.exists()

    def append_audit(self, record: dict) -> None:
        blob = self.container.get_blob_client(AUDIT)
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with contextlib.suppress(ResourceExistsError):  # created by an earlier decision
            blob.create_append_blob(match_condition=MatchConditions.IfMissing)
        blob.append_block(line)

    def recent_decisions(self, limit: int = 20) -> list[dict]:
        """The newest decisions first, from the log's tail only: the log only grows."""
        blob = self.container.get_blob_client(AUDIT)
        try:
            size = blob.get_blob_properties().size
            start = max(0, size - AUDIT_TAIL_BYTES)
            tail = (
                blob.download_blob(offset=start).readall().decode(errors="replace") if size else ""
            )
        except ResourceNotFoundError:
            return []
        lines = tail.splitlines()[1:] if start else tail.splitlines()  # the first may be cut
        decisions = []
        for line in reversed(lines):
            try:
                decisions.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("skipping an unreadable line in %s", AUDIT)
            if len(decisions) == limit:
                break
        return decisions


def _version_blob(version: str) -> str:
    return f"{VERSIONS}{checked_version(version)}.onnx"


def after_the_fact(write: Callable[[], None], what: str) -> bool:
    """A write once the decision is made (the pointer moved), which must not turn it undecided:
    a few tries on storage errors; False when none landed (the caller logs what was lost)."""
    for attempt in range(AFTER_THE_FACT_ATTEMPTS):
        try:
            write()
            return True
        except AzureError:
            log.warning("%s failed (attempt %d)", what, attempt + 1, exc_info=True)
            time.sleep(0.2 * (attempt + 1))
    return False
