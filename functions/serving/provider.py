"""Which model serves: the bundled default, until storage's current.json points elsewhere."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from functions.clock import utc_now
from functions.model_contract import UnusableModel
from functions.serving.errors import NoModelAvailable
from functions.serving.loaded_model import LoadedModel, ModelHolder, load_model_file

if TYPE_CHECKING:
    from functions.serving.follower import PointerFollower
    from functions.serving.listing import RegistryListing
    from functions.storage.model_registry import ModelRegistry

BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "model" / "model.onnx"
# A cold instance waits this long for its first look at current.json and the registry, so its
# first answers already come from the promoted version; storage slower than this is caught up
# later, by threads of their own.
FIRST_CHECK_WAIT_SECONDS = 3.0
log = logging.getLogger(__name__)


Storage = Callable[[], "tuple[ModelRegistry, float] | None"]


def no_storage() -> None:
    """Storage for a provider that serves the bundled model only."""


class BundledModel:
    """The model shipped with the app, loaded on first use and then shared by everyone who
    asks (serving and the promoter's baseline): once per process. A failed load is not kept,
    so the next use tries again."""

    def __init__(self, path: Path = BUNDLED_MODEL) -> None:
        self.path = path
        self._model: LoadedModel | None = None
        self._lock = threading.Lock()

    def get(self) -> LoadedModel:
        with self._lock:
            if self._model is None:
                self._model = load_model_file(self.path, source="bundled")
                log.info(
                    "bundled model %s loaded (sha256 %s)",
                    self._model.version,
                    self._model.sha256[:12],
                )
            return self._model


class ModelProvider:
    """Loads the bundled model once, on first use, starts following storage and listing the
    registry, and hands out the model being served. Only the first use waits (on loading the
    bundled model and the first look at storage); everything after answers from memory."""

    def __init__(self, bundled: BundledModel, storage: Storage = no_storage) -> None:
        """`storage` gives the registry and refresh interval, or None (bundled model only)."""
        self.bundled = bundled
        # Told when a served model keeps failing (strikes.py): the follower rolls it back.
        self.holder = ModelHolder(on_failing=self._model_failing)
        self.last_error: str | None = None
        self.registry: ModelRegistry | None = None
        self.follower: PointerFollower | None = None
        self.listing: RegistryListing | None = None
        self._storage = storage
        self._start_lock = threading.Lock()

    def current(self) -> LoadedModel:
        model = self.holder.current
        if model is None:
            model = self._start()
        return model

    def is_loaded(self) -> bool:
        """Whether `current` returns at once (no cold start to go through)."""
        return self.holder.current is not None

    def storage_status(self) -> dict[str, object]:
        if self.follower is None:
            return {"following": False, "last_error": self.last_error}
        return {"following": True, **self.follower.status()}

    def registry_listing(self, served: LoadedModel) -> dict[str, object]:
        """The pointer, versions and decisions for /api/models, from memory. Without storage
        the bundled model is all there is, and that is known at once."""
        rollbacks = self.follower.describe_rollbacks() if self.follower is not None else []
        if self.listing is not None:
            return {**self.listing.answer(), "rollbacks": rollbacks}
        return {
            "pointer": None,
            "pointer_error": None,
            "rollbacks": rollbacks,
            "versions": [served.describe()],
            "decisions": [],
            "listing": {
                "loaded": True,
                "as_of": utc_now(),
                "age_seconds": 0.0,
                "refresh_seconds": None,
                "last_error": self.last_error,
            },
        }

    def _model_failing(self, model: LoadedModel, reason: str) -> None:
        """A model this provider served failed too often (strikes.py), on that request's
        thread. With storage, the follower rolls it back; the bundled model has nothing behind
        it, and keeps serving (each failure is a 503)."""
        follower = self.follower
        if follower is not None:
            follower.roll_back(model, reason)
        else:
            log.critical(
                "%s keeps failing (%s); there is nothing to roll back to", model.version, reason
            )

    def stop(self) -> None:
        for worker in (self.follower, self.listing):
            if worker:
                worker.stop()

    def _start(self) -> LoadedModel:
        with self._start_lock:  # one start, however many requests arrive at once
            if self.holder.current is not None:
                return self.holder.current
            try:
                bundled = self.bundled.get()
            except (OSError, UnusableModel) as error:
                self.last_error = f"the bundled model cannot be loaded: {error}"
                log.exception("bundled model %s failed to load", self.bundled.path)
                raise NoModelAvailable("no model can be served right now") from error
            self.last_error = None
            self._follow_storage(bundled)
            # The first look at storage may have swapped in the promoted version already.
            self.holder.swap_if_empty(bundled)
            return self.holder.current

    def _follow_storage(self, bundled: LoadedModel) -> None:
        try:
            storage = self._storage()
        except Exception as error:  # a malformed connection, a broken identity: serve anyway
            self.last_error = f"model storage cannot be used: {error}"
            log.exception("model storage cannot be used; serving the bundled model only")
            return
        if storage is None:
            return
        # Imported only when there is storage to follow: they use the Azure SDK, which building
        # the registry has just loaded.
        from functions.serving.follower import PointerFollower  # noqa: PLC0415
        from functions.serving.listing import RegistryListing  # noqa: PLC0415

        self.registry, refresh_seconds = storage
        self.listing = RegistryListing(self.registry, refresh_seconds)
        # After a rollback, the listing is read again at once: /api/models shows it.
        self.follower = PointerFollower(
            self.registry,
            self.holder,
            bundled,
            refresh_seconds,
            on_rollback=self.listing.wake,
        )
        self.follower.start()
        self.listing.start()
        deadline = time.monotonic() + FIRST_CHECK_WAIT_SECONDS
        self.follower.first_done.wait(FIRST_CHECK_WAIT_SECONDS)
        self.listing.first_done.wait(max(0.0, deadline - time.monotonic()))
