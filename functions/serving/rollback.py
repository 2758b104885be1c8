"""A served version that keeps failing (strikes.py) is rolled back by the instance that sees it:

1. at once, on the request's thread: the instance stops serving it and serves the bundled model,
   which is in memory already and trusted;
2. then, on the follower's thread: current.json is moved back to the previous accepted version
   (or to the bundled model) when current.json, read then, still names the failing version, with
   a conditional write on that read's ETag, and the one instance whose write lands appends the
   audit line
   (`rolled_back`, with the reason). Every instance then follows the pointer as it follows a
   promotion, and a cold instance never loads the failing version.

Several instances that see the same failures write once between them: the others' writes are
refused on the ETag, and their re-read finds current.json naming another version, so they leave
it. A promotion that lands first is never undone: current.json no longer names the failing
version, and nothing is written. If storage cannot be written, the instance keeps the failing
version out of service, and tries again at each check. (The same version promoted again between
the failures and that read is rolled back with it: it was failing.)
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import asdict, dataclass
from functools import partial

from functions.clock import utc_now
from functions.serving.loaded_model import LoadedModel
from functions.storage.errors import PointerConflict
from functions.storage.model_registry import ModelRegistry, after_the_fact
from functions.storage.names import VERSION_PATTERN
from functions.storage.pointer import Pointer

POINTER_ATTEMPTS = 5
PENDING = "pending"
log = logging.getLogger(__name__)


@dataclass
class LocalRollback:
    """A version this instance stopped serving, and what became of current.json. Made on the
    failing request's thread, then changed only on the follower's; read whole by /api/models."""

    version: str
    sha256: str
    reason: str
    at: str
    # The ETag of the current.json that named it, once read ("" if it was replaced before);
    # None until then.
    pointer_etag: str | None = None
    rolled_back_to: str | None = None
    outcome: str = PENDING
    last_error: str | None = None

    def describe(self) -> dict[str, object]:
        """All but the ETag, which is this instance's own business."""
        described = asdict(self)
        del described["pointer_etag"]
        return described

    def refuses(self, pointer: Pointer) -> bool:
        """Whether `pointer`, which names this version, is the one it was rolled back from (or
        may be: not read yet), rather than a promotion of it since, which is followed."""
        return self.pointer_etag is None or self.pointer_etag == pointer.etag


@dataclass(frozen=True)
class Target:
    version: str
    sha256: str
    figures: dict


def move_pointer_back(
    registry: ModelRegistry, rollback: LocalRollback, bundled: LoadedModel, refused: set[str]
) -> None:
    """Moves current.json from the failing version to the previous accepted one, or the bundled
    model; records the outcome on `rollback`. Storage errors propagate: it stays pending."""
    for _ in range(POINTER_ATTEMPTS):
        pointer = registry.read_pointer()
        if pointer is None or not pointer.usable or pointer.document["sha256"] != rollback.sha256:
            rollback.outcome = _left_alone(pointer, rollback)
            if rollback.pointer_etag is None:  # never saw it named: any pointer naming it is new
                rollback.pointer_etag = ""
            return
        rollback.pointer_etag = pointer.etag
        target = rollback_target(registry, pointer, bundled, refused)
        document = {
            "version": target.version,
            "sha256": target.sha256,
            "promoted_at": utc_now("milliseconds"),
            "gate": target.figures,
            "previous_version": rollback.version,
            "rolled_back_from": {
                "version": rollback.version,
                "sha256": rollback.sha256,
                "reason": rollback.reason,
                "at": rollback.at,
                "by": instance_name(),
            },
        }
        try:
            registry.replace_pointer(document, pointer)
        except PointerConflict:
            continue  # re-read: another instance, or a promotion, wrote it meanwhile
        rollback.rolled_back_to = target.version
        rollback.outcome = f"current.json moved back to {target.version}"
        log.warning(
            "current.json moved back from %s to %s: %s",
            rollback.version,
            target.version,
            rollback.reason,
            extra={"model_version": target.version, "previous_version": rollback.version},
        )
        _audit(registry, rollback, target)
        return
    rollback.outcome = "current.json kept changing; left as it is"


def rollback_target(
    registry: ModelRegistry, pointer: Pointer, bundled: LoadedModel, refused: set[str]
) -> Target:
    """The previous accepted version, if it is one (stored, promoted, neither the failing
    version nor one rolled back before); the bundled model otherwise."""
    document = pointer.document
    previous = document.get("previous_version")
    undone = document.get("rolled_back_from")
    undone_version = undone.get("version") if isinstance(undone, dict) else None
    if (
        isinstance(previous, str)
        and VERSION_PATTERN.fullmatch(previous)
        and previous not in (document["version"], undone_version)
    ):
        stored = registry.stored_version(previous)
        if (
            stored is not None
            and stored.accepted
            and stored.sha256 not in (document["sha256"], *refused)
        ):
            return Target(previous, stored.sha256, stored.figures)
    return Target(bundled.version, bundled.sha256, {})


def instance_name() -> str:
    """Which instance and process wrote: for the audit line, never used for anything else."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _left_alone(pointer: Pointer | None, rollback: LocalRollback) -> str:
    if pointer is None:
        return "current.json is gone: the bundled model serves"
    if not pointer.usable:
        return f"current.json no longer names it ({pointer.damage})"
    undone = pointer.document.get("rolled_back_from")
    if isinstance(undone, dict) and undone.get("sha256") == rollback.sha256:
        return (
            f"rolled back to {pointer.document['version']} by another instance ({undone.get('by')})"
        )
    return f"current.json names {pointer.document['version']} now: left as it is"


def _audit(registry: ModelRegistry, rollback: LocalRollback, target: Target) -> None:
    """The pointer has moved: the rollback is made; its audit line is tried a few times, then
    left to the log."""
    record = {
        "at": utc_now("milliseconds"),
        "decision": "rolled_back",
        "version": target.version,
        "sha256": target.sha256,
        "figures": target.figures,
        "previous_version": rollback.version,
        "reason": f"serving rolled {rollback.version} back: {rollback.reason}",
        "by": instance_name(),
    }
    if after_the_fact(partial(registry.append_audit, record), "audit write"):
        return
    rollback.outcome += "; its audit line could not be written (it is in the log)"
    log.error("rolled back but not audited: %s", record)
