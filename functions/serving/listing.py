"""What /api/models lists (current.json, the accepted versions, the recent decisions), read from
storage by a thread of its own and kept in memory, so that a request never waits on storage:
it answers with the last listing read and says how old it is."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

from functions.clock import utc_now
from functions.serving.repeating import Repeating
from functions.storage.clients import is_unreachable
from functions.storage.model_registry import ModelRegistry

RECENT_DECISIONS = 20
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listing:
    """One complete read of the registry, or none yet. Replaced whole, never changed in place."""

    pointer: dict | None = None
    pointer_error: str | None = None  # why current.json cannot be used (it is shown as None)
    versions: list[dict] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)
    read_at: str | None = None  # None: never read
    read_monotonic: float | None = None
    last_error: str | None = None  # of the latest refresh, when it failed: the rest is older


class RegistryListing(Repeating):
    """What /api/models lists, re-read from the registry off the request path."""

    def __init__(self, registry: ModelRegistry, refresh_seconds: float) -> None:
        self.registry = registry
        self.refresh_seconds = refresh_seconds
        self.listing = Listing()
        self._damage_logged: str | None = None  # the ETag of the damaged current.json logged
        super().__init__("registry-listing", self.refresh, refresh_seconds)

    def refresh(self) -> None:
        """One read of the registry. Never raises: a failure keeps the last listing, and is
        logged and shown beside it. A damaged current.json is shown as such, beside versions and
        decisions that keep being read."""
        try:
            pointer = self.registry.read_pointer()
            damage = pointer.damage if pointer is not None else None
            if damage is not None and pointer.etag != self._damage_logged:
                log.error("listing the model registry: %s", damage)
                self._damage_logged = pointer.etag
            listing = Listing(
                pointer=pointer.document if pointer is not None and pointer.usable else None,
                pointer_error=damage,
                versions=self.registry.versions(),
                decisions=self.registry.recent_decisions(RECENT_DECISIONS),
                read_at=utc_now(),
                read_monotonic=time.monotonic(),
            )
        except Exception as error:  # storage down or hung
            failed = f"{type(error).__name__}: {error}"
            self.listing = dataclasses.replace(self.listing, last_error=failed)
            if is_unreachable(error):  # expected while storage is down: no traceback
                log.warning("listing the model registry failed: storage unreachable (%s)", error)
            else:
                log.exception("listing the model registry failed")
            return
        self.listing = listing

    def answer(self) -> dict[str, object]:
        """The fields of /api/models from memory: pointer (and `pointer_error` when current.json
        is damaged), versions, decisions, and `listing`, which says when they were read and
        whether the latest refresh failed."""
        listing = self.listing  # one read: the thread may replace it meanwhile
        loaded = listing.read_monotonic is not None
        return {
            "pointer": listing.pointer,
            "pointer_error": listing.pointer_error,
            "versions": listing.versions,
            "decisions": listing.decisions,
            "listing": {
                "loaded": loaded,
                "as_of": listing.read_at,
                "age_seconds": round(time.monotonic() - listing.read_monotonic, 3)
                if loaded
                else None,
                "refresh_seconds": self.refresh_seconds,
                "last_error": listing.last_error,
            },
        }
