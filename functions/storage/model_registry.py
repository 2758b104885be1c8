"""The model registry's operations on its blob container (the layout, the names and their checks
are in registry.py): the drop zone and its claims, accepted versions, the pointer, decisions."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ResourceNotModifiedError,
)
from azure.storage.blob import BlobLeaseClient, ContainerClient, ContentSettings

from functions.clock import utc_now
from functions.storage import registry  # CLAIM_SECONDS: read at each use (tests shorten it)
from functions.storage.errors import IncomingBeingDecided, PointerConflict, VersionConflict
from functions.storage.registry import (
    ATTEMPTS,
    AUDIT,
    AUDIT_TAIL_BYTES,
    FAILED_ATTEMPTS,
    FIRST_FAILED_AT,
    INCOMING,
    MAX_ERROR_CHARS,
    MAX_KEPT_ERRORS,
    POINTER,
    PROMOTED,
    REJECTED,
    UNDECIDED_ERRORS,
    VERSIONS,
    DroppedFile,
    Pointer,
    checked_version,
    incoming_version,
    json_or_none,
    pointer_from,
    sha256_of,
)

JSON_CONTENT = ContentSettings(content_type="application/json")
log = logging.getLogger(__name__)


class ModelRegistry:
    def __init__(self, container: ContainerClient) -> None:
        self.container = container

    def ensure_container(self) -> None:
        with contextlib.suppress(ResourceExistsError):  # the usual case
            self.container.create_container()

    # --- the drop zone ----------------------------------------------------------------------

    def claim_incoming(self, name: str, max_bytes: int) -> DroppedFile | None:
        """Leases and reads the dropped file, so one instance decides on it however many events
        arrive. None when it is gone (a repeated event) or leased (being decided elsewhere).
        A file over `max_bytes` is not read at all: its content comes back empty.

        Each claim counts one attempt in the file's metadata before anything else is done with
        it, so a decision that never ends (the process killed or hung) still counts. An attempt
        that ends in an error the promoter catches is noted apart (`release_incoming`): the
        file's `broken_off` counts only the attempts that never reported back."""
        incoming_version(name)  # before any storage call: no crafted path is ever leased
        blob = self.container.get_blob_client(INCOMING + name)
        try:
            lease = blob.acquire_lease(lease_duration=registry.CLAIM_SECONDS)
        except ResourceNotFoundError:
            return None
        except HttpResponseError as error:
            if error.status_code == 409:  # LeaseAlreadyPresent
                return None
            raise
        try:
            properties = blob.get_blob_properties(lease=lease)
            stored = dict(properties.metadata or {})
            attempt = _int_or_zero(stored.get(ATTEMPTS)) + 1
            blob.set_blob_metadata({**stored, ATTEMPTS: str(attempt)}, lease=lease)
            too_large = properties.size > max_bytes
            content = b"" if too_large else blob.download_blob(lease=lease).readall()
        except ResourceNotFoundError:
            return None
        except Exception:
            # Not claimed after all: free the file now rather than when the lease runs out.
            with contextlib.suppress(AzureError):  # the error that matters is the one raised
                lease.release()
            raise
        earlier_errors = tuple(_json_list(stored.pop(UNDECIDED_ERRORS, None)))
        failed = _int_or_zero(stored.pop(FAILED_ATTEMPTS, None))
        first_failed_at = stored.pop(FIRST_FAILED_AT, None)
        stored.pop(ATTEMPTS, None)
        return DroppedFile(
            name,
            content,
            properties.size,
            stored,
            lease,
            attempt,
            earlier_errors,
            failed=min(failed, attempt - 1),
            first_failed_at=first_failed_at,
        )

    def renew_claim(self, dropped: DroppedFile) -> None:
        """Before each write of a decision: a slow decision must not lose its lease midway."""
        dropped.lease.renew()

    def keep_claim(self, dropped: DroppedFile, limit_seconds: float) -> ClaimKeeper:
        """Renews the claim in the background for as long as the decision runs, at most
        `limit_seconds`: use as `with registry.keep_claim(dropped, limit):`."""
        return ClaimKeeper(dropped.lease, registry.CLAIM_SECONDS / 3, limit_seconds)

    def release_incoming(self, dropped: DroppedFile, error: str | None = None) -> None:
        """Frees an undecided file for the next try. With `error`, the attempt ended in an error
        the promoter caught: it is noted on the file (the reason a rejection for too many
        attempts gives) and counted as failed, not as broken off, so that an event's retries
        after a storage error do not use up the attempts meant for crashes and hangs. Either
        step may find the lease gone already; then the attempt counts as broken off."""
        if error is not None:
            errors = [*dropped.earlier_errors, error[:MAX_ERROR_CHARS]][-MAX_KEPT_ERRORS:]
            metadata = {
                **dropped.metadata,
                ATTEMPTS: str(dropped.attempt),
                FAILED_ATTEMPTS: str(dropped.failed + 1),
                FIRST_FAILED_AT: dropped.first_failed_at or utc_now(),
                UNDECIDED_ERRORS: json.dumps(errors),  # ASCII: a header value
            }
            try:
                self.container.get_blob_client(INCOMING + dropped.name).set_blob_metadata(
                    metadata, lease=dropped.lease
                )
            except AzureError:
                log.warning(
                    "incoming/%s: could not note why it is undecided", dropped.name, exc_info=True
                )
        try:
            dropped.lease.release()
        except HttpResponseError:  # expired already: nothing to free
            pass
        except AzureError:  # storage away: the lease expires by itself; the caller's error counts
            log.warning("incoming/%s: could not free its claim", dropped.name, exc_info=True)

    def drop_incoming(self, version: str, content: bytes, metadata: dict[str, str]) -> str:
        """Uploads incoming/<version>.onnx (asking for its promotion); returns its path. A file
        that the promoter holds leased while it decides refuses the upload: IncomingBeingDecided.
        """
        path = INCOMING + f"{checked_version(version)}.onnx"  # checked before any storage call
        try:
            self.container.upload_blob(path, content, overwrite=True, metadata=metadata)
        except HttpResponseError as error:
            # A leased blob answers an upload without its lease with 412 (or 409).
            if error.status_code in (409, 412):
                raise IncomingBeingDecided(f"{path} is being decided right now") from error
            raise
        return path

    def incoming_names(self) -> list[str]:
        """Every name under incoming/, valid or not: the caller checks each before using it."""
        return [blob.name[len(INCOMING) :] for blob in self.container.list_blobs(INCOMING)]

    def remove_incoming(self, dropped: DroppedFile) -> None:
        """Deletes the decided file under its lease. A file deleted already is fine; one whose
        lease was lost (412) or taken (409) now belongs to another decision, and stays."""
        incoming_version(dropped.name)
        try:
            self.container.delete_blob(INCOMING + dropped.name, lease=dropped.lease)
        except ResourceNotFoundError:
            return
        except HttpResponseError as error:
            if error.status_code not in (409, 412):
                raise
            log.warning("incoming/%s: lease lost before removal; left in place", dropped.name)

    # --- accepted versions ------------------------------------------------------------------

    def store_version(self, version: str, content: bytes, metadata: dict[str, str]) -> None:
        """Writes versions/<version>.onnx once; the same bytes again are fine, others refused."""
        blob = self.container.get_blob_client(VERSIONS + f"{checked_version(version)}.onnx")
        try:
            blob.upload_blob(content, overwrite=False, metadata=metadata)
        except ResourceExistsError:
            existing = blob.get_blob_properties().metadata.get("sha256")
            if existing != sha256_of(content):
                raise VersionConflict(
                    f"version {version} exists with other content (sha256 {existing}); "
                    "versions are immutable: publish under a new version name"
                ) from None

    def stored_version(self, version: str) -> dict[str, str] | None:
        """The metadata of versions/<version>.onnx (sha256, gate figures, promoted), or None."""
        try:
            properties = self.container.get_blob_client(
                VERSIONS + f"{checked_version(version)}.onnx"
            ).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return dict(properties.metadata or {})

    def mark_promoted(self, version: str) -> None:
        """A stored version counts as accepted only once current.json has pointed at it: one that
        was stored and then refused (or whose decision broke off) is judged in full again."""
        blob = self.container.get_blob_client(VERSIONS + f"{checked_version(version)}.onnx")
        metadata = dict(blob.get_blob_properties().metadata or {})
        if metadata.get(PROMOTED) != "true":
            blob.set_blob_metadata({**metadata, PROMOTED: "true"})

    def read_version(self, version: str) -> bytes:
        return self.container.download_blob(VERSIONS + f"{checked_version(version)}.onnx").readall()

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

    # --- the pointer ------------------------------------------------------------------------

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
        None, only if it still does not exist)."""
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


class ClaimKeeper:
    """Renews a lease every `every` seconds in a background thread until the `with` block ends
    or `limit_seconds` have passed. The limit is hard: a decision that outlives it loses its
    file to the next claim, which counts it as one more attempt."""

    def __init__(self, lease: BlobLeaseClient, every: float, limit_seconds: float) -> None:
        self.lease, self.every, self.limit_seconds = lease, every, limit_seconds
        self.renewals = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="claim-keeper", daemon=True)

    def __enter__(self) -> ClaimKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every)  # a renewal in flight is bounded by its client

    def _renew(self) -> None:
        deadline = time.monotonic() + self.limit_seconds
        while not self._stop.wait(min(self.every, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                log.warning("a decision ran past %.0f s; its claim is let go", self.limit_seconds)
                return
            try:
                self.lease.renew()
            except HttpResponseError as error:
                if error.status_code in (409, 412):  # the lease is lost: renewing cannot help
                    log.warning("the claim was lost; the decision will not be recorded")
                    return
                log.warning("the claim could not be renewed; trying again", exc_info=True)
                continue
            except AzureError:  # storage unreachable for now: the lease outlasts a few tries
                log.warning("the claim could not be renewed; trying again", exc_info=True)
                continue
            self.renewals += 1


def _int_or_zero(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


def _json_list(value: str | None) -> list[str]:
    """The error notes kept on an incoming file; anything unreadable is dropped."""
    try:
        found = json.loads(value) if value else []
    except json.JSONDecodeError:
        return []
    return [str(item) for item in found] if isinstance(found, list) else []
