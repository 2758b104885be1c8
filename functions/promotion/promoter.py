"""Deciding on a dropped file, as one straight pipeline (contracts.md section 2):

1. the name, checked once, into a Candidate (version, blob), before any storage call;
2. the claim: the file leased (kept while the decision runs), read within the size cap, counted;
3. its history: stored before (immutable), accepted before (a rollback), or given up on;
4. the gate (gate.py): size, integrity, the trial in a child process, the quality checks;
5. the version stored, and current.json swapped on its ETag (the quality checks again if another
   version became current meanwhile);
6. the verdict, built once, and written once: an audit line, and rejected/<version>.json for a
   refusal.

A stage either returns a value or raises `Refusal` (check, reason); the refusal becomes the
verdict in one place (`_decide`)."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from azure.core.exceptions import ResourceNotFoundError

from functions.clock import utc_now
from functions.model_contract import UnusableModel
from functions.promotion.errors import Refusal
from functions.promotion.gate import MAX_MODEL_BYTES, GatePolicy, Judged, check_quality, judge
from functions.promotion.gate_set import GateSet
from functions.serving.loaded_model import LoadedModel, load_model
from functions.storage.claims import DroppedFile
from functions.storage.errors import InvalidName, PointerConflict, VersionConflict
from functions.storage.model_registry import ModelRegistry, after_the_fact
from functions.storage.names import Candidate, candidate_named, invalid_name_record
from functions.storage.pointer import Pointer
from functions.storage.registry import PROMOTED, sha256_of

POINTER_ATTEMPTS = 8
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
ACCEPTED, ROLLED_BACK, UNCHANGED, REJECTED = "accepted", "rolled_back", "unchanged", "rejected"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    version: str
    # "accepted", "rolled_back" (an earlier version again), "unchanged" (the served file
    # again) or "rejected"
    decision: str
    record: dict


@dataclass(frozen=True)
class Verdict:
    """The decision on one drop, built once at the end of the pipeline, and what its audit line
    and (for a refusal) its rejected/<version>.json say."""

    decision: str
    version: str
    sha256: str | None
    figures: Mapping[str, object]
    previous_version: str | None = None  # all but a refusal
    refusal: Refusal | None = None  # a refusal only
    details: Mapping[str, object] = field(default_factory=dict)  # added to the record as they are
    record_name: str | None = None  # rejected/<record_name>.json; the version's own by default

    def record(self) -> dict:
        record = {
            "at": utc_now("milliseconds"),
            "decision": self.decision,
            "version": self.version,
            "sha256": self.sha256,
            "figures": dict(self.figures),
        }
        if self.refusal is not None:
            record.update(check=self.refusal.check, reason=self.refusal.reason)
        else:
            record["previous_version"] = self.previous_version
        record.update(self.details)
        return record


@dataclass(frozen=True)
class Swap:
    """What the pointer swap came to: the figures as last judged (the quality checks run again
    against a newer current model), and the previous version and the damage replaced; or the
    refusal of those checks."""

    figures: dict[str, object]
    previous_version: str | None = None
    replaced_damage: str | None = None
    refusal: Refusal | None = None


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
            candidate = candidate_named(name)  # the one check of the name, before any storage call
        except InvalidName as error:
            return self._refuse_name(name, error)
        dropped = self.registry.claim_incoming(candidate, MAX_MODEL_BYTES)
        if dropped is None:
            log.info("%s: nothing to do (handled already or being handled)", candidate.blob)
            return None
        try:
            with self.registry.keep_claim(dropped, DECISION_LIMIT_SECONDS):
                decision = self._write(self._decide(dropped))
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

    # --- the pipeline -----------------------------------------------------------------------

    def _decide(self, dropped: DroppedFile) -> Verdict:
        """The stages, in order, for a claimed file; the first Refusal is its verdict."""
        if dropped.broken_off >= MAX_DECISION_ATTEMPTS or _failed_for_long(dropped):
            return self._give_up(dropped)  # instead of judging it yet again
        candidate, sha256 = dropped.candidate, sha256_of(dropped.content)
        figures: dict[str, object] = {"size_bytes": dropped.size}  # what a refusal records
        try:
            stored = self.registry.stored_version(candidate.version)
            pointer = self._read_pointer(candidate)
            # Served before, with these very bytes: dropping it again is a rollback. So is
            # dropping the bundled model (the app's own, what serves without storage) when it is
            # the version current.json replaced: `publish --rollback`. A bundled model that
            # never served here (a new app's own) is judged as any new version.
            rollback = bool(stored and stored.accepted and stored.sha256 == sha256) or (
                sha256 == self._bundled_sha() and self._bundled_replaced_by(pointer)
            )
            current = self._current_model(pointer)
            judged = judge(
                candidate.version,
                dropped.content,
                dropped.metadata,
                policy=self.policy,
                gate_set=self.gate_set,
                current=current,
                accepted_before=rollback,
                size=dropped.size,
            )
            figures = judged.figures
            if stored is not None and stored.sha256 != sha256:
                raise Refusal(
                    "immutable",
                    f"version {candidate.version} exists with other content (sha256 "
                    f"{stored.sha256}); versions are immutable: publish under a new version name",
                )
            if rollback:  # the figures it was promoted with travel with it again
                figures = {**(stored.figures if stored else {}), **figures}
            if pointer is None and sha256 == self._bundled_sha():  # what serves without one
                bundled = self._bundled_version()
                return Verdict(UNCHANGED, candidate.version, sha256, figures, bundled)
            if pointer is not None and pointer.document.get("sha256") == sha256:
                self.registry.mark_promoted(candidate.version)  # dropped the served file again
                previous = pointer.document["version"]
                return Verdict(UNCHANGED, candidate.version, sha256, figures, previous)
            self._store(dropped, sha256, figures)
            swap = self._move_pointer(
                sha256=sha256,
                version=candidate.version,
                judged=judged,
                figures=figures,
                judged_against=current,
                rollback=rollback,
            )
            figures = swap.figures
            if swap.refusal is not None:  # another version was promoted meanwhile, and is better
                raise swap.refusal
        except Refusal as refusal:
            log.warning("rejected %s: %s: %s", candidate.blob, refusal.check, refusal.reason)
            return Verdict(REJECTED, candidate.version, sha256, figures, refusal=refusal)
        details = {"replaced_damaged_pointer": swap.replaced_damage} if swap.replaced_damage else {}
        decision = ROLLED_BACK if rollback else ACCEPTED
        previous = swap.previous_version
        return Verdict(decision, candidate.version, sha256, figures, previous, details=details)

    def _read_pointer(self, candidate: Candidate) -> Pointer | None:
        pointer = self.registry.read_pointer()
        if pointer is not None and not pointer.usable:
            log.error(
                "%s; judging %s against the bundled model, and a promotion replaces it",
                pointer.damage,
                candidate.blob,
            )
        return pointer

    def _store(self, dropped: DroppedFile, sha256: str, figures: dict[str, object]) -> None:
        """versions/<version>.onnx, "pending" until current.json points at it."""
        self.registry.renew_claim(dropped)
        metadata = {
            "sha256": sha256,
            "gate": json.dumps(figures, separators=(",", ":")),  # metadata holds strings only
            PROMOTED: "pending",
        }
        try:
            self.registry.store_version(dropped.candidate.version, dropped.content, metadata)
        except VersionConflict as conflict:  # a race with another drop of the same name
            raise Refusal("immutable", str(conflict)) from conflict
        self.registry.renew_claim(dropped)

    def _move_pointer(
        self,
        *,
        sha256: str,
        version: str,
        judged: Judged,
        figures: dict[str, object],
        judged_against: LoadedModel | None,
        rollback: bool,
    ) -> Swap:
        """Compare-and-swap on current.json's ETag, re-read and retried on conflict, so two
        promotions at once both land in order and neither is lost. If another version became
        current since the candidate was judged, the quality checks run again against it.
        A damaged current.json counts as none (the bundled model is the previous version) and
        is replaced, on its ETag."""
        against_sha = judged_against.sha256 if judged_against else None
        for attempt in range(POINTER_ATTEMPTS):
            pointer = self.registry.read_pointer()
            damage = pointer.damage if pointer is not None else None
            usable = pointer if pointer is not None and pointer.usable else None
            previous = usable.document["version"] if usable else self._bundled_version()
            if usable and usable.document["sha256"] == sha256:
                return Swap(figures, usable.document.get("previous_version"))  # already served
            now_sha = usable.document["sha256"] if usable else self._bundled_sha()
            if not rollback and now_sha != against_sha:
                now_current = self._current_model(pointer)
                try:
                    again = check_quality(
                        judged.gate_answers, now_current, self.gate_set, self.policy
                    )
                except Refusal as refusal:
                    return Swap(figures, refusal=refusal)
                figures = {**figures, **again}
                against_sha = now_current.sha256 if now_current else None
            document = {
                "version": version,
                "sha256": sha256,
                "promoted_at": utc_now("milliseconds"),
                "gate": figures,
                "previous_version": previous,
            }
            try:
                self.registry.replace_pointer(document, pointer)
                return Swap(figures, previous, damage)
            except PointerConflict:
                log.info("current.json changed meanwhile; retrying (attempt %d)", attempt + 1)
                time.sleep(random.uniform(0.05, 0.3) * (attempt + 1))  # noqa: S311 - jitter only
        raise PointerConflict(f"current.json kept changing; gave up after {POINTER_ATTEMPTS} tries")

    def _write(self, verdict: Verdict) -> Decision:
        """The verdict, written once. After the pointer moved, the decision is made: its audit
        line and the version's mark are tried a few times, then left to the logs, and never
        retried as undecided (a retry would see "unchanged" and lose the previous version)."""
        record = verdict.record()
        if verdict.decision == REJECTED:
            # The record first: rewriting it is harmless, so a retry after a failed audit write
            # appends the audit line once.
            self.registry.write_rejection(verdict.record_name or verdict.version, record)
            self.registry.append_audit(record)
        elif verdict.decision == UNCHANGED:
            self.registry.append_audit(record)
        else:
            if not after_the_fact(partial(self.registry.append_audit, record), "audit write"):
                record = {
                    "decision": verdict.decision,
                    "version": verdict.version,
                    "sha256": verdict.sha256,
                }
                log.error("decision made but not audited: %s", json.dumps(record))
            mark = partial(self.registry.mark_promoted, verdict.version)
            if not after_the_fact(mark, f"marking {verdict.version} promoted"):
                log.error("%s is served but could not be marked promoted", verdict.version)
            log.info(
                "%s %s (previous %s)", verdict.decision, verdict.version, verdict.previous_version
            )
        return Decision(verdict.version, verdict.decision, record)

    # --- refusals before or instead of the pipeline -------------------------------------------

    def _refuse_name(self, name: str, error: InvalidName) -> Decision | None:
        """A name that is no `<version>.onnx` is refused without leasing, reading or deleting
        anything under it: such a name may be crafted to reach outside incoming/. The file, if
        there is one, stays; its rejection is recorded once, under the name's hash."""
        record_name = invalid_name_record(name)
        if self.registry.has_rejection(record_name):
            log.info("incoming/%r: its invalid name was refused before", name)
            return None
        log.warning("refused incoming/%r: %s", name, error)
        refusal = Refusal("name", f"{error}; nothing under this name was read or changed")
        version = name.removesuffix(".onnx")[:128]
        return self._write(
            Verdict(REJECTED, version, None, {}, refusal=refusal, record_name=record_name)
        )

    def _give_up(self, dropped: DroppedFile) -> Verdict:
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
        refusal = Refusal(
            "undecided", f"{why}; it is not judged again: publish it again once fixed"
        )
        log.warning("rejected %s: %s", dropped.candidate.blob, refusal.reason)
        errors = list(dropped.earlier_errors) or ["none recorded why: each stopped or hung midway"]
        sha256 = sha256_of(dropped.content) if dropped.content else None
        version = dropped.candidate.version
        return Verdict(
            REJECTED, version, sha256, {}, refusal=refusal, details={"earlier_errors": errors}
        )

    # --- the model to beat ------------------------------------------------------------------

    def _current_model(self, pointer: Pointer | None) -> LoadedModel | None:
        """The model a candidate is compared with; the bundled one while storage has none, or
        when the current version cannot be read (a candidate is then judged against that)."""
        if pointer is None or not pointer.usable:  # a damaged pointer counts as none
            return self.bundled
        if pointer.document["sha256"] == self._bundled_sha():  # rolled back to it
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

    def _bundled_replaced_by(self, pointer: Pointer | None) -> bool:
        """current.json names the bundled model as the version it replaced."""
        usable = pointer is not None and pointer.usable
        return usable and pointer.document.get("previous_version") == self._bundled_version()

    def _bundled_sha(self) -> str | None:
        return self.bundled.sha256 if self.bundled else None

    def _bundled_version(self) -> str | None:
        return self.bundled.version if self.bundled else None


def _failed_for_long(dropped: DroppedFile) -> bool:
    """MAX_FAILED_ATTEMPTS attempts ended in errors, the first FAILED_ATTEMPTS_SECONDS ago."""
    if dropped.failed < MAX_FAILED_ATTEMPTS or not dropped.first_failed_at:
        return False
    try:
        first = datetime.fromisoformat(dropped.first_failed_at.replace("Z", "+00:00"))
    except ValueError:  # unreadable: judged by the count alone
        return True
    return (datetime.now(UTC) - first).total_seconds() >= FAILED_ATTEMPTS_SECONDS
