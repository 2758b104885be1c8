"""Deciding on a dropped file and recording the decision: version, pointer, rejection, audit."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from azure.core.exceptions import AzureError, ResourceNotFoundError

from functions.clock import utc_now
from functions.model_contract import UnusableModel
from functions.promotion.gate import (
    MAX_MODEL_BYTES,
    GatePolicy,
    Refused,
    Verdict,
    check_quality,
    judge,
    version_of,
)
from functions.promotion.gate_set import GateSet
from functions.serving.loaded_model import LoadedModel, load_model
from functions.storage.errors import PointerConflict, VersionConflict
from functions.storage.model_registry import ModelRegistry
from functions.storage.registry import (
    PROMOTED,
    VERSION_PATTERN,
    DroppedFile,
    InvalidName,
    Pointer,
    incoming_version,
    sha256_of,
    stored_gate_figures,
)

POINTER_ATTEMPTS = 8
AUDIT_ATTEMPTS = 3
# A file whose decision broke off this many times (a crash, or a hang past the limit: the
# attempt never reported back) is not judged again: the next claim records it as rejected and
# removes it.
MAX_DECISION_ATTEMPTS = 3
# Attempts that ended in an error the promoter caught (storage errors, mostly) are counted apart:
# an event's retries come within seconds and must not use up the attempts above. A file is given
# up for them only once this many failed over at least this long (the reconciler runs every
# five minutes, Event Grid retries for 24 hours).
MAX_FAILED_ATTEMPTS = 10
FAILED_ATTEMPTS_SECONDS = 3600
# The longest one decision keeps its claim; past it, the file is free for the next attempt.
DECISION_LIMIT_SECONDS = 300
# A reconciler run starts no new decision after this long (its timer fires every 300 s).
RECONCILE_LIMIT_SECONDS = 240
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    version: str
    # "accepted", "rolled_back" (an earlier version again), "unchanged" (the served file
    # again) or "rejected"
    decision: str
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
        (a repeated event), another instance holds its lease (is deciding right now), or its
        invalid name was refused before."""
        try:
            incoming_version(name)
        except InvalidName as refusal:  # before any storage call that uses the name
            return self._refuse_name(name, refusal)
        dropped = self.registry.claim_incoming(name, MAX_MODEL_BYTES)
        if dropped is None:
            log.info("incoming/%s: nothing to do (handled already or being handled)", name)
            return None
        try:
            with self.registry.keep_claim(dropped, DECISION_LIMIT_SECONDS):
                if dropped.broken_off >= MAX_DECISION_ATTEMPTS or _failed_for_long(dropped):
                    decision = self._give_up(dropped)  # instead of judging it yet again
                else:
                    decision = self._decide(dropped)
        except Exception as error:
            # Undecided: free the file for the event's retry or the reconciler, noting why.
            self.registry.release_incoming(dropped, f"attempt {dropped.attempt}: {error!r}")
            raise
        self.registry.remove_incoming(dropped)
        return decision

    def reconcile(self, limit_seconds: float = RECONCILE_LIMIT_SECONDS) -> list[Decision]:
        """Decide on every file left in incoming/ (one whose event never arrived). One file that
        cannot be decided now does not hold up the others; it stays for the next round, as do
        the files not reached within `limit_seconds`."""
        deadline = time.monotonic() + limit_seconds
        decisions = []
        names = self.registry.incoming_names()
        for position, name in enumerate(names):
            if time.monotonic() >= deadline:
                log.warning("reconciler: %d file(s) left for the next round", len(names) - position)
                break
            try:
                decision = self.handle(name)
            except Exception:
                log.exception("incoming/%r could not be decided; it stays for the next round", name)
                continue
            if decision is not None:
                decisions.append(decision)
        return decisions

    def _refuse_name(self, name: str, refusal: InvalidName) -> Decision | None:
        """A name that is no `<version>.onnx` is refused without leasing, reading or deleting
        anything under it: such a name may be crafted to reach outside incoming/. The file, if
        there is one, stays; its rejection is recorded once, under the name's hash."""
        record_name = "invalid-name-" + sha256_of(name.encode("utf-8", "surrogatepass"))[:12]
        if self.registry.has_rejection(record_name):
            log.info("incoming/%r: its invalid name was refused before", name)
            return None
        log.warning("refused incoming/%r: %s", name, refusal)
        version = version_of(name)
        verdict = Verdict(version=version[:128], sha256=None, failed_check="name")
        verdict.reason = f"{refusal}; nothing under this name was read or changed"
        record = self._audit(verdict, "rejected")
        self.registry.write_rejection(record_name, record)
        return Decision(verdict.version, "rejected", record)

    def _give_up(self, dropped: DroppedFile) -> Decision:
        """The file's decision broke off MAX_DECISION_ATTEMPTS times, or failed with errors for
        longer than FAILED_ATTEMPTS_SECONDS: judging it again would most likely hang or fail
        again, so it is refused with what is known of why."""
        if dropped.broken_off >= MAX_DECISION_ATTEMPTS:
            why = (
                f"{dropped.broken_off} attempts to decide on it broke off (a crash or a hang each "
                "time)"
            )
        else:
            why = (
                f"{dropped.failed} attempts to decide on it failed with errors (see "
                f"earlier_errors) since {dropped.first_failed_at}"
            )
        verdict = Verdict(
            version=version_of(dropped.name),
            sha256=sha256_of(dropped.content) if dropped.content else None,
            failed_check="undecided",
            reason=f"{why}; it is not judged again: publish it again once fixed",
        )
        log.warning("rejected %s: %s", dropped.name, verdict.reason)
        errors = list(dropped.earlier_errors) or ["none recorded why: each stopped or hung midway"]
        return self._reject_verdict(verdict, earlier_errors=errors)

    def _decide(self, dropped: DroppedFile) -> Decision:
        version = version_of(dropped.name)
        stored = self.registry.stored_version(version) if _plausible(version) else None
        content_sha = hashlib.sha256(dropped.content).hexdigest()
        # Served before, with these very bytes: dropping it again is a rollback. So is dropping
        # the bundled model (the app's own, what serves without storage): `publish --rollback`
        # when the previous version is the bundled one.
        accepted_before = (
            bool(stored and stored.get("sha256") == content_sha and stored.get(PROMOTED) == "true")
            or content_sha == self._bundled_sha256()
        )
        pointer = self.registry.read_pointer()
        if pointer is not None and not pointer.usable:
            log.error(
                "%s; judging %s against the bundled model, and a promotion replaces it",
                pointer.damage,
                dropped.name,
            )
        current = self._current_model(pointer)
        verdict = judge(
            dropped.name,
            dropped.content,
            dropped.metadata,
            policy=self.policy,
            gate_set=self.gate_set,
            current=current,
            previously_accepted=accepted_before,
            size=dropped.size,
        )
        if verdict.accepted and stored and stored.get("sha256") != verdict.sha256:
            verdict.accepted, verdict.failed_check = False, "immutable"
            verdict.reason = (
                f"version {version} exists with other content (sha256 {stored.get('sha256')}); "
                "versions are immutable: publish under a new version name"
            )
        if not verdict.accepted:
            return self._reject(dropped, verdict)
        if accepted_before:  # the figures it was promoted with travel with it again
            verdict.figures = {**stored_gate_figures(stored or {}), **verdict.figures}
        if pointer is None and verdict.sha256 == self._bundled_sha256():
            record = self._audit(verdict, "unchanged", previous_version=self._bundled_version())
            return Decision(verdict.version, "unchanged", record)  # what serves without a pointer
        if pointer and pointer.document.get("sha256") == verdict.sha256:
            self.registry.mark_promoted(version)
            record = self._audit(verdict, "unchanged", previous_version=pointer.document["version"])
            return Decision(verdict.version, "unchanged", record)  # dropped the served file again
        judged_against = current.sha256 if current else None
        return self._accept(dropped, verdict, judged_against, rollback=accepted_before)

    def _accept(
        self, dropped: DroppedFile, verdict: Verdict, judged_against: str | None, *, rollback: bool
    ) -> Decision:
        try:
            self.registry.renew_claim(dropped)
            self.registry.store_version(verdict.version, dropped.content, _as_metadata(verdict))
        except VersionConflict as conflict:  # a race with another drop of the same name
            verdict.failed_check, verdict.reason = "immutable", str(conflict)
            return self._reject_verdict(verdict)
        self.registry.renew_claim(dropped)
        try:
            previous, replaced_damage = self._move_pointer(
                verdict, judged_against, rollback=rollback
            )
        except Refused as refusal:  # another version was promoted meanwhile, and is better
            verdict.failed_check, verdict.reason = refusal.check, refusal.reason
            return self._reject_verdict(verdict)
        decision = "rolled_back" if rollback else "accepted"
        # The pointer has moved: the decision is made. What follows records it and is never
        # retried as undecided (a retry would see "unchanged" and lose the previous version).
        details = {"replaced_damaged_pointer": replaced_damage} if replaced_damage else {}
        record = self._audit_after_the_fact(verdict, decision, previous, **details)
        self._mark_promoted_after_the_fact(verdict.version)
        log.info("%s %s (previous %s)", decision, verdict.version, previous)
        return Decision(verdict.version, decision, record)

    def _move_pointer(
        self, verdict: Verdict, judged_against: str | None, *, rollback: bool
    ) -> tuple[str | None, str | None]:
        """Compare-and-swap on current.json's ETag, re-read and retried on conflict, so two
        promotions at once both land in order and neither is lost. If another version became
        current since the candidate was judged, the regression gate is run again against it.
        A damaged current.json counts as none (the bundled model is the previous version) and
        is replaced, on its ETag. Returns the previous version, and the damage replaced."""
        for attempt in range(POINTER_ATTEMPTS):
            pointer = self.registry.read_pointer()
            damage = pointer.damage if pointer is not None else None
            usable = pointer if pointer is not None and pointer.usable else None
            previous = usable.document["version"] if usable else self._bundled_version()
            if usable and usable.document["sha256"] == verdict.sha256:
                return usable.document.get("previous_version"), None  # already served
            now_sha = usable.document["sha256"] if usable else self._bundled_sha256()
            if not rollback and now_sha != judged_against:
                now_current = self._current_model(pointer)
                verdict.figures.update(
                    check_quality(verdict.gate_predictions, now_current, self.gate_set, self.policy)
                )
                judged_against = now_current.sha256 if now_current else None
            document = {
                "version": verdict.version,
                "sha256": verdict.sha256,
                "promoted_at": utc_now("milliseconds"),
                "gate": verdict.figures,
                "previous_version": previous,
            }
            try:
                self.registry.replace_pointer(document, pointer)
                return previous, damage
            except PointerConflict:
                log.info("current.json changed meanwhile; retrying (attempt %d)", attempt + 1)
                time.sleep(random.uniform(0.05, 0.3) * (attempt + 1))  # noqa: S311 - jitter only
        raise PointerConflict(f"current.json kept changing; gave up after {POINTER_ATTEMPTS} tries")

    def _audit_after_the_fact(
        self, verdict: Verdict, decision: str, previous: str | None, **details: object
    ) -> dict:
        """The pointer has moved: the decision is made and must not be retried as undecided if
        the audit write fails. A few tries, then the record goes to the logs."""
        for attempt in range(AUDIT_ATTEMPTS):
            try:
                return self._audit(verdict, decision, previous_version=previous, **details)
            except AzureError:
                log.warning("audit write failed (attempt %d)", attempt + 1, exc_info=True)
                time.sleep(0.2 * (attempt + 1))
        record = {"decision": decision, "version": verdict.version, "sha256": verdict.sha256}
        log.error("decision made but not audited: %s", json.dumps(record))
        return record

    def _mark_promoted_after_the_fact(self, version: str) -> None:
        """A few tries; if they all fail, the version serves but is not listed as accepted
        until it is marked (dropping the served file again marks it: "unchanged")."""
        for attempt in range(AUDIT_ATTEMPTS):
            try:
                self.registry.mark_promoted(version)
                return
            except AzureError:
                log.warning("marking %s promoted failed (attempt %d)", version, attempt + 1)
                time.sleep(0.2 * (attempt + 1))
        log.error("%s is served but could not be marked promoted in versions/", version)

    def _reject(self, dropped: DroppedFile, verdict: Verdict) -> Decision:
        log.warning("rejected %s: %s: %s", dropped.name, verdict.failed_check, verdict.reason)
        return self._reject_verdict(verdict)

    def _reject_verdict(self, verdict: Verdict, **details: object) -> Decision:
        record = self._audit(verdict, "rejected", **details)
        self.registry.write_rejection(_record_name(verdict), record)
        return Decision(verdict.version, "rejected", record)

    def _audit(
        self,
        verdict: Verdict,
        decision: str,
        previous_version: str | None = None,
        **details: object,
    ) -> dict:
        record = {
            "at": utc_now("milliseconds"),
            "decision": decision,
            "version": verdict.version,
            "sha256": verdict.sha256,
            "figures": verdict.figures,
        }
        if decision == "rejected":
            record.update(check=verdict.failed_check, reason=verdict.reason)
        else:
            record["previous_version"] = previous_version
        record.update(details)
        self.registry.append_audit(record)
        return record

    def _current_model(self, pointer: Pointer | None) -> LoadedModel | None:
        """The model a candidate is compared with; the bundled one while storage has none, or
        when the current version cannot be read (a candidate is then judged against that)."""
        if pointer is None or not pointer.usable:  # a damaged pointer counts as none
            return self.bundled
        if pointer.document["sha256"] == self._bundled_sha256():  # rolled back to it
            return self.bundled
        # A current version that is gone or broken cannot be the bar; a storage error, though,
        # must not lower it: it propagates, and the file is decided on a later try.
        try:
            return load_model(
                self.registry.read_version(pointer.document["version"]), source="storage"
            )
        except (UnusableModel, ResourceNotFoundError, KeyError):
            log.exception("the current version cannot be loaded; judging against the bundled")
            return self.bundled

    def _bundled_sha256(self) -> str | None:
        return self.bundled.sha256 if self.bundled else None

    def _bundled_version(self) -> str | None:
        return self.bundled.version if self.bundled else None


def _plausible(version: str) -> bool:
    return bool(VERSION_PATTERN.fullmatch(version))


def _failed_for_long(dropped: DroppedFile) -> bool:
    """MAX_FAILED_ATTEMPTS attempts ended in errors, the first FAILED_ATTEMPTS_SECONDS ago."""
    if dropped.failed < MAX_FAILED_ATTEMPTS or not dropped.first_failed_at:
        return False
    try:
        first = datetime.fromisoformat(dropped.first_failed_at.replace("Z", "+00:00"))
    except ValueError:  # unreadable: judged by the count alone
        return True
    return (datetime.now(UTC) - first).total_seconds() >= FAILED_ATTEMPTS_SECONDS


def _record_name(verdict: Verdict) -> str:
    """rejected/<version>.json; a name that is no valid version is recorded under its hash."""
    return verdict.version if _plausible(verdict.version) else f"invalid-name-{verdict.sha256[:12]}"


def _as_metadata(verdict: Verdict) -> dict[str, str]:
    """Blob metadata holds strings only: the gate figures travel as one JSON value."""
    return {
        "sha256": verdict.sha256,
        "gate": json.dumps(verdict.figures, separators=(",", ":")),
        PROMOTED: "pending",
    }
