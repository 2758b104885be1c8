"""Following current.json: each instance checks it at most every MODEL_REFRESH_SECONDS with a
conditional read, and swaps in a newly promoted version once it is downloaded, checked and
warm. Requests in flight finish on the model they started with.

A damaged current.json (not JSON, a field missing) changes nothing served: the version served
before it (on a cold instance, the bundled model) keeps serving, and the damage is logged and
shown in /api/health until a promotion replaces it. A served version that keeps failing is
rolled back (rollback.py): taken out of service at once, then current.json moved back from this
thread."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from functions.clock import utc_now
from functions.serving.loaded_model import LoadedModel, ModelHolder, load_model
from functions.serving.repeating import Repeating
from functions.serving.rollback import PENDING, LocalRollback, move_pointer_back
from functions.storage.clients import is_unreachable
from functions.storage.model_registry import ModelRegistry
from functions.storage.pointer import Pointer

CACHE_DIR = Path(tempfile.gettempdir()) / "digit-models"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FollowerState:
    """What /api/health shows about storage. Replaced whole, never changed in place, so that a
    reader on another thread always sees one check's outcome."""

    reachable: bool | None = None  # None: no check has finished yet
    last_check_at: str | None = None
    last_reached_at: str | None = None  # when storage last answered (whatever it said)
    last_error: str | None = None
    pointer_version: str | None = None
    pointer_error: str | None = None  # why the current.json read last cannot be used
    reached_monotonic: float | None = None  # for the age; not shown


class PointerFollower(Repeating):
    def __init__(
        self,
        registry: ModelRegistry,
        holder: ModelHolder,
        bundled: LoadedModel,
        refresh_seconds: float,
        *,
        cache_dir: Path = CACHE_DIR,
        on_rollback: Callable[[], None] | None = None,
    ) -> None:
        """`on_rollback()` is called after this instance moved current.json back."""
        self.registry = registry
        self.holder = holder
        self.bundled = bundled
        self.refresh_seconds = refresh_seconds
        self.cache_dir = cache_dir
        self.on_rollback = on_rollback
        self.state = FollowerState()
        self.rollbacks: dict[str, LocalRollback] = {}  # by sha256: the versions refused here
        self._rollbacks_lock = threading.Lock()
        self._etag: str | None = None
        super().__init__("model-follower", self.check, refresh_seconds)

    def status(self) -> dict[str, object]:
        """The state for /api/health, with the age of the last answer from storage."""
        state = self.state
        shown = dataclasses.asdict(state)
        reached = shown.pop("reached_monotonic")
        age = None if reached is None else round(time.monotonic() - reached, 3)
        return {**shown, "seconds_since_reached": age, "refresh_seconds": self.refresh_seconds}

    def roll_back(self, model: LoadedModel, reason: str) -> None:
        """`model` keeps failing (strikes.py): called on the thread of its last failure. It is
        taken out of service at once (the bundled model serves meanwhile) and current.json is
        moved back on this follower's thread, woken for it."""
        if model.sha256 == self.bundled.sha256:
            log.critical("the bundled model %s keeps failing (%s)", model.version, reason)
            return
        with self._rollbacks_lock:
            # Once per failing run of a version: a settled rollback of an earlier one (the same
            # version promoted again since) gives way to this one.
            earlier = self.rollbacks.get(model.sha256)
            if earlier is not None and earlier.outcome == PENDING:
                return
            self.rollbacks[model.sha256] = LocalRollback(
                model.version, model.sha256, reason, utc_now("milliseconds")
            )
        swapped = self.holder.swap_if_current(model, self.bundled)
        log.error(
            "rolled back %s (%s): %s; current.json is moved back next",
            model.version,
            reason,
            f"serving the bundled model {self.bundled.version} meanwhile"
            if swapped
            else "it was no longer served",
            extra={"model_version": model.version},
        )
        self.wake()

    def describe_rollbacks(self) -> list[dict[str, object]]:
        """The versions this instance rolled back, newest first, for /api/models."""
        with self._rollbacks_lock:
            rollbacks = list(self.rollbacks.values())
        return [rollback.describe() for rollback in reversed(rollbacks)]

    def check(self) -> None:
        """One look at current.json. Never raises: a failure keeps the current model serving and
        is logged and shown in /api/health; the next check tries again. A timeout or any other
        transport failure counts as storage being unreachable. Rollbacks this instance decided
        are written first."""
        state = dataclasses.replace(self.state, last_check_at=utc_now())
        self._settle_rollbacks()
        try:
            changed, pointer = self.registry.read_pointer_if_changed(self._etag)
            state = dataclasses.replace(
                state,
                reachable=True,
                last_error=None,
                last_reached_at=utc_now(),
                reached_monotonic=time.monotonic(),
            )
            if changed:
                version = pointer.document.get("version") if pointer else None
                damage = pointer.damage if pointer else None
                state = dataclasses.replace(state, pointer_version=version, pointer_error=damage)
                self._follow(pointer)
        except Exception as error:  # storage down, a bad file: keep serving what we have
            unreachable = is_unreachable(error)
            state = dataclasses.replace(
                state,
                reachable=not unreachable,
                last_error=f"{type(error).__name__}: {error}",
            )
            if unreachable:  # expected while storage is down: one line a check, not a traceback
                log.warning(
                    "model storage unreachable (%s); the current model keeps serving", error
                )
            else:
                log.exception("following current.json failed; the current model keeps serving")
        self.state = state

    def _settle_rollbacks(self) -> None:
        """Moves current.json back for each rollback not settled yet. A storage error leaves it
        pending, for the next check; the version stays out of service meanwhile."""
        with self._rollbacks_lock:
            pending = [
                rollback for rollback in self.rollbacks.values() if rollback.outcome == PENDING
            ]
            refused = set(self.rollbacks)
        for rollback in pending:
            try:
                move_pointer_back(self.registry, rollback, self.bundled, refused)
            except Exception as error:  # storage down: tried again at the next check
                rollback.last_error = f"{type(error).__name__}: {error}"
                log.warning(
                    "could not move current.json back from %s yet: %s", rollback.version, error
                )
                continue
            rollback.last_error = None
            if rollback.rolled_back_to is not None and self.on_rollback is not None:
                self.on_rollback()

    def _follow(self, pointer: Pointer | None) -> None:
        if pointer is None:
            if self.holder.current is not self.bundled:
                log.info("current.json is gone: back to the bundled model %s", self.bundled.version)
                self.holder.swap(self.bundled)
            self._etag = None
            return
        if not pointer.usable:
            # Not followed, and not retried until it changes: what serves keeps serving.
            log.error(
                "%s: it is ignored, and %s keeps serving until a promotion replaces it",
                pointer.damage,
                getattr(self.holder.current, "version", self.bundled.version),
            )
            self._etag = pointer.etag
            return
        version, sha256 = pointer.document["version"], pointer.document["sha256"]
        rolled_back = self.rollbacks.get(sha256)
        if rolled_back is not None and rolled_back.refuses(pointer):
            log.warning("current.json still names %s, which this instance rolled back", version)
            self._etag = pointer.etag if rolled_back.pointer_etag is not None else None
            return
        current = self.holder.current
        if sha256 == self.bundled.sha256:  # rolled back to the bundled model: nothing to load
            if current is not self.bundled:
                self.holder.swap(self.bundled)
                log.info("current.json names the bundled model %s: serving it", version)
            self._etag = pointer.etag
            return
        if current is None or current.sha256 != sha256:
            model = load_model(
                self._content(version, sha256),
                source="storage",
                gate_latency_ms=_gate_latency_ms(pointer),
            )
            previous = self.holder.swap(model)
            log.info(
                "swapped to %s (sha256 %s) from %s",
                version,
                sha256[:12],
                previous.version if previous else None,
                extra={
                    "model_version": version,
                    "previous_version": getattr(previous, "version", None),
                },
            )
        self._etag = pointer.etag  # only once followed: a failed load is retried next time

    def _content(self, version: str, sha256: str) -> bytes:
        """The version's bytes from the local cache (by sha256), else from storage, checked."""
        cached = self.cache_dir / f"{sha256}.onnx"
        if cached.is_file():
            content = cached.read_bytes()
            if hashlib.sha256(content).hexdigest() == sha256:
                return content
        content = self.registry.read_version(version)
        actual = hashlib.sha256(content).hexdigest()
        if actual != sha256:
            raise ValueError(
                f"versions/{version}.onnx has sha256 {actual}; current.json says {sha256}"
            )
        _write_cache(cached, content)
        return content


def _write_cache(path: Path, content: bytes) -> None:
    """Atomic, and private to this process until renamed (processes on an instance share the
    folder); a cache that cannot be written only costs a download next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, partial = tempfile.mkstemp(dir=path.parent, suffix=".partial")
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(content)
        os.replace(partial, path)
    except OSError:
        log.warning("could not cache %s", path.name, exc_info=True)


def _gate_latency_ms(pointer: Pointer) -> object:
    """The gate's median single-image latency as current.json records it (checked by
    load_model: anything but a positive number counts as unknown)."""
    gate = pointer.document.get("gate")
    return gate.get("median_latency_ms") if isinstance(gate, dict) else None
