"""Following current.json: each instance checks it at most every MODEL_REFRESH_SECONDS with a
conditional read, and swaps in a newly promoted version once it is downloaded, checked and
warm. Requests in flight finish on the model they started with."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from functions.clock import utc_now
from functions.serving.loaded_model import LoadedModel, ModelHolder, load_model
from functions.serving.repeating import Repeating
from functions.storage.clients import is_unreachable
from functions.storage.model_registry import ModelRegistry
from functions.storage.registry import Pointer

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
    reached_monotonic: float | None = None  # for the age; not shown


class PointerFollower:
    def __init__(
        self,
        registry: ModelRegistry,
        holder: ModelHolder,
        bundled: LoadedModel,
        refresh_seconds: float,
        cache_dir: Path = CACHE_DIR,
    ) -> None:
        self.registry = registry
        self.holder = holder
        self.bundled = bundled
        self.refresh_seconds = refresh_seconds
        self.cache_dir = cache_dir
        self.state = FollowerState()
        self._etag: str | None = None
        self.thread = Repeating("model-follower", self.check, refresh_seconds)
        self.first_check_done = self.thread.first_done

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.thread.stop()

    def status(self) -> dict[str, object]:
        """The state for /api/health, with the age of the last answer from storage."""
        state = self.state
        shown = dataclasses.asdict(state)
        reached = shown.pop("reached_monotonic")
        age = None if reached is None else round(time.monotonic() - reached, 3)
        return {**shown, "seconds_since_reached": age, "refresh_seconds": self.refresh_seconds}

    def check(self) -> None:
        """One look at current.json. Never raises: a failure keeps the current model serving and
        is logged and shown in /api/health; the next check tries again. A timeout or any other
        transport failure counts as storage being unreachable."""
        state = dataclasses.replace(self.state, last_check_at=utc_now())
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
                state = dataclasses.replace(state, pointer_version=version)
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

    def _follow(self, pointer: Pointer | None) -> None:
        if pointer is None:
            if self.holder.current is not self.bundled:
                log.info("current.json is gone: back to the bundled model %s", self.bundled.version)
                self.holder.swap(self.bundled)
            self._etag = None
            return
        version, sha256 = pointer.document["version"], pointer.document["sha256"]
        current = self.holder.current
        if current is None or current.sha256 != sha256:
            model = load_model(self._content(version, sha256), source="storage")
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
