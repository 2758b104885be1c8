"""The drop zone (incoming/) and its claims: a dropped file is leased while one decision runs on
it, the lease renewed in the background within a hard limit, and each start of a decision counted
in the file's metadata, so that every drop is decided once, in bounded time (contracts.md
section 2). Only a Candidate (names.py) is ever leased, read or deleted."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobLeaseClient, ContainerClient

from functions.clock import utc_now
from functions.storage.errors import IncomingBeingDecided
from functions.storage.names import Candidate
from functions.storage.registry import INCOMING

CLAIM_SECONDS = 60  # a claim's lease; renewed while the decision runs (see ClaimKeeper)
ATTEMPTS = "attempts"  # incoming metadata: how often a decision on this file was started
# incoming metadata: how many of those ended in an error the promoter caught (and when the
# first did): these were not crashes or hangs
FAILED_ATTEMPTS = "failed_attempts"
FIRST_FAILED_AT = "first_failed_at"
UNDECIDED_ERRORS = "undecided_errors"  # incoming metadata: why earlier attempts broke off
MAX_KEPT_ERRORS = 5
MAX_ERROR_CHARS = 300
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DroppedFile:
    """A claimed file of the drop zone: leased, read (within the size cap) and counted."""

    candidate: Candidate
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


class DropZone:
    """The operations on incoming/, part of `ModelRegistry`."""

    container: ContainerClient

    def claim_incoming(self, candidate: Candidate, max_bytes: int) -> DroppedFile | None:
        """Leases and reads the dropped file, so one instance decides on it however many events
        arrive. None when it is gone (a repeated event) or leased (being decided elsewhere).
        A file over `max_bytes` is not read at all: its content comes back empty.

        Each claim counts one attempt in the file's metadata before anything else is done with
        it, so a decision that never ends (the process killed or hung) still counts. An attempt
        that ends in an error the promoter catches is noted apart (`release_incoming`): the
        file's `broken_off` counts only the attempts that never reported back."""
        blob = self.container.get_blob_client(candidate.blob)
        try:
            lease = blob.acquire_lease(lease_duration=CLAIM_SECONDS)
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
            candidate,
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
        return ClaimKeeper(dropped.lease, CLAIM_SECONDS / 3, limit_seconds)

    def release_incoming(self, dropped: DroppedFile, error: str | None = None) -> None:
        """Frees an undecided file for the next try. With `error`, the attempt ended in an error
        the promoter caught: it is noted on the file (the reason a rejection for too many
        attempts gives) and counted as failed, not as broken off, so that an event's retries
        after a storage error do not use up the attempts meant for crashes and hangs. Either
        step may find the lease gone already; then the attempt counts as broken off."""
        blob = dropped.candidate.blob
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
                self.container.get_blob_client(blob).set_blob_metadata(
                    metadata, lease=dropped.lease
                )
            except AzureError:
                log.warning("%s: could not note why it is undecided", blob, exc_info=True)
        try:
            dropped.lease.release()
        except HttpResponseError:  # expired already: nothing to free
            pass
        except AzureError:  # storage away: the lease expires by itself; the caller's error counts
            log.warning("%s: could not free its claim", blob, exc_info=True)

    def remove_incoming(self, dropped: DroppedFile) -> None:
        """Deletes the decided file under its lease. A file deleted already is fine; one whose
        lease was lost (412) or taken (409) now belongs to another decision, and stays."""
        try:
            self.container.delete_blob(dropped.candidate.blob, lease=dropped.lease)
        except ResourceNotFoundError:
            return
        except HttpResponseError as error:
            if error.status_code not in (409, 412):
                raise
            log.warning("%s: lease lost before removal; left in place", dropped.candidate.blob)

    def drop_incoming(self, version: str, content: bytes, metadata: dict[str, str]) -> str:
        """Uploads incoming/<version>.onnx (asking for its promotion); returns its path. A file
        that the promoter holds leased while it decides refuses the upload: IncomingBeingDecided.
        """
        candidate = Candidate(version)  # checked before any storage call
        try:
            self.container.upload_blob(candidate.blob, content, overwrite=True, metadata=metadata)
        except HttpResponseError as error:
            # A leased blob answers an upload without its lease with 412 (or 409).
            if error.status_code in (409, 412):
                being_decided = f"{candidate.blob} is being decided right now"
                raise IncomingBeingDecided(being_decided) from error
            raise
        return candidate.blob

    def incoming_names(self) -> list[str]:
        """Every name under incoming/, valid or not: the caller checks each before using it."""
        return [blob.name[len(INCOMING) :] for blob in self.container.list_blobs(INCOMING)]


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
