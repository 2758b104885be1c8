"""Deciding on a dropped file and recording the decision: version, pointer, rejection, audit."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from functions.promotion.gate import GatePolicy, Verdict, judge, version_of
from functions.promotion.gate_set import GateSet
from functions.serving.model import LoadedModel, UnusableModel, load_model
from functions.storage.registry import (
    VERSION_PATTERN,
    DroppedFile,
    ModelRegistry,
    Pointer,
    PointerConflict,
    VersionConflict,
)

POINTER_ATTEMPTS = 8
log = logging.getLogger(__name__)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Decision:
    version: str
    decision: str  # "accepted", "rolled_back" (an earlier version again) or "rejected"
    record: dict


class Promoter:
    def __init__(
        self,
        registry: ModelRegistry,
        policy: GatePolicy,
        gate_set: GateSet,
        bundled: LoadedModel | None,
    ) -> None:
        self.registry = registry
        self.policy = policy
        self.gate_set = gate_set
        self.bundled = bundled  # the baseline while storage has no current.json

    def handle(self, name: str) -> Decision | None:
        """Decide on incoming/<name>. None when there is nothing to decide: the file is gone
        (a repeated event) or another instance holds its lease (is deciding right now)."""
        dropped = self.registry.claim_incoming(name)
        if dropped is None:
            log.info("incoming/%s: nothing to do (handled already or being handled)", name)
            return None
        try:
            decision = self._decide(dropped)
        except Exception:
            # Undecided: free the file for the event's retry or the reconciler.
            self.registry.release_incoming(dropped)
            raise
        self.registry.remove_incoming(dropped)
        return decision

    def reconcile(self) -> list[Decision]:
        """Decide on every file left in incoming/ (one whose event never arrived)."""
        decisions = [self.handle(name) for name in self.registry.incoming_names()]
        return [decision for decision in decisions if decision is not None]

    def _decide(self, dropped: DroppedFile) -> Decision:
        version = version_of(dropped.name)
        known_sha = self.registry.version_sha256(version) if _plausible(version) else None
        pointer = self.registry.read_pointer()
        verdict = judge(
            dropped.name,
            dropped.content,
            dropped.metadata,
            policy=self.policy,
            gate_set=self.gate_set,
            current=self._current_model(pointer),
            previously_accepted=known_sha is not None,
        )
        if verdict.accepted and known_sha is not None and known_sha != verdict.sha256:
            verdict.accepted, verdict.failed_check = False, "immutable"
            verdict.reason = (
                f"version {version} was accepted before with other content (sha256 {known_sha}); "
                "versions are immutable: publish under a new version name"
            )
        if not verdict.accepted:
            return self._reject(dropped, verdict)
        return self._accept(verdict, dropped.content, rollback=known_sha is not None)

    def _accept(self, verdict: Verdict, content: bytes, *, rollback: bool) -> Decision:
        try:
            self.registry.store_version(verdict.version, content, _as_metadata(verdict))
        except VersionConflict as conflict:  # a race with another drop of the same name
            verdict.failed_check, verdict.reason = "immutable", str(conflict)
            return self._reject_verdict(verdict)
        previous = self._move_pointer(verdict)
        decision = "rolled_back" if rollback else "accepted"
        record = self._audit(verdict, decision, previous_version=previous)
        log.info("%s %s (previous %s)", decision, verdict.version, previous)
        return Decision(verdict.version, decision, record)

    def _move_pointer(self, verdict: Verdict) -> str | None:
        """Compare-and-swap on current.json's ETag, re-read and retried on conflict, so two
        promotions at once both land in order and neither is lost."""
        for attempt in range(POINTER_ATTEMPTS):
            pointer = self.registry.read_pointer()
            previous = pointer.document.get("version") if pointer else self._bundled_version()
            if pointer and pointer.document.get("sha256") == verdict.sha256:
                return pointer.document.get("previous_version")  # already served: no change
            document = {
                "version": verdict.version,
                "sha256": verdict.sha256,
                "promoted_at": utc_now(),
                "gate": verdict.figures,
                "previous_version": previous,
            }
            try:
                self.registry.replace_pointer(document, pointer)
                return previous
            except PointerConflict:
                log.info("current.json changed meanwhile; retrying (attempt %d)", attempt + 1)
                time.sleep(random.uniform(0.05, 0.3) * (attempt + 1))  # noqa: S311 - jitter only
        raise PointerConflict(f"current.json kept changing; gave up after {POINTER_ATTEMPTS} tries")

    def _reject(self, dropped: DroppedFile, verdict: Verdict) -> Decision:
        log.warning("rejected %s: %s: %s", dropped.name, verdict.failed_check, verdict.reason)
        return self._reject_verdict(verdict)

    def _reject_verdict(self, verdict: Verdict) -> Decision:
        record = self._audit(verdict, "rejected")
        self.registry.write_rejection(_record_name(verdict), record)
        return Decision(verdict.version, "rejected", record)

    def _audit(self, verdict: Verdict, decision: str, previous_version: str | None = None) -> dict:
        record = {
            "at": utc_now(),
            "decision": decision,
            "version": verdict.version,
            "sha256": verdict.sha256,
            "figures": verdict.figures,
        }
        if decision == "rejected":
            record.update(check=verdict.failed_check, reason=verdict.reason)
        else:
            record["previous_version"] = previous_version
        self.registry.append_audit(record)
        return record

    def _current_model(self, pointer: Pointer | None) -> LoadedModel | None:
        if pointer is None:
            return self.bundled
        version = pointer.document["version"]
        try:
            return load_model(self.registry.read_version(version), source="storage")
        except UnusableModel:
            log.exception("current version %s cannot be loaded; judging without it", version)
            return None

    def _bundled_version(self) -> str | None:
        return self.bundled.version if self.bundled else None


def _plausible(version: str) -> bool:
    return bool(VERSION_PATTERN.match(version))


def _record_name(verdict: Verdict) -> str:
    """rejected/<version>.json; a name that is no valid version is recorded under its hash."""
    return verdict.version if _plausible(verdict.version) else f"invalid-name-{verdict.sha256[:12]}"


def _as_metadata(verdict: Verdict) -> dict[str, str]:
    """Blob metadata holds strings only."""
    return {"sha256": verdict.sha256, **{key: str(value) for key, value in verdict.figures.items()}}
