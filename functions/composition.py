"""The one place where the app's parts are built: settings -> storage clients -> registries ->
the bundled model, the model provider, the promoter, the feedback store and the limits of the
endpoints that need them, each once per process and on first use,
so that indexing the app needs no settings and a missing setting fails at first use, by name.
`function_app.py` builds one `Services` and hands it to the blueprints, which bind it to each
handler; tests build their own with fakes or real Azurite objects and call the handlers with it.
The thread pools the blueprints hand work to (functions/pools.py) are the process's own unless a
test gives others.

Cold start: what the first prediction does not need (the Azure SDK for storage, the promotion
gate, the feedback store) is imported here, by the method that builds it, and nowhere earlier,
so that indexing the app and a first prediction load none of it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from functions.api.pacing import Pacer
from functions.api.rate_limit import ClientRateLimit
from functions.pools import Pools, shared_pools
from functions.serving.provider import BUNDLED_MODEL, BundledModel, ModelProvider
from functions.settings import MissingSetting, Settings, settings
from functions.storage.errors import StorageUnavailable

if TYPE_CHECKING:
    from functions.feedback.store import FeedbackStore
    from functions.promotion.promoter import Promoter
    from functions.serving.loaded_model import LoadedModel
    from functions.storage.model_registry import ModelRegistry

log = logging.getLogger(__name__)
MODELS_PER_SECOND = 50  # /api/models, per instance: the listing changes at most every refresh
MODELS_MAX_WAIT_SECONDS = 2.0


class Services:
    def __init__(
        self,
        *,
        read_settings: Callable[[], Settings] = settings,
        bundled_path: Path = BUNDLED_MODEL,
        provider: ModelProvider | None = None,
        promoter: Promoter | None = None,
        feedback_store: FeedbackStore | None = None,
        pools: Pools | None = None,
        models_pace: Pacer | None = None,
        feedback_limit: ClientRateLimit | None = None,
    ) -> None:
        """Parts given here are used as they are; the rest are built on first use."""
        self.read_settings = read_settings
        self.pools = pools or shared_pools()
        self.models_pace = models_pace or Pacer(MODELS_PER_SECOND, MODELS_MAX_WAIT_SECONDS)
        self._feedback_limit = feedback_limit
        self._feedback_limit_lock = threading.Lock()
        self.bundled = BundledModel(bundled_path)
        self._provider = provider
        self._promoter = promoter
        self._provider_lock = threading.Lock()
        self._promoter_lock = threading.Lock()
        self._feedback_store = feedback_store
        self._feedback_lock = threading.Lock()

    def settings(self) -> Settings:
        return self.read_settings()

    @property
    def provider(self) -> ModelProvider:
        provider = self._provider  # every request asks: no lock once it is built
        if provider is not None:
            return provider
        with self._provider_lock:
            if self._provider is None:
                self._provider = ModelProvider(self.bundled, storage=self.serving_storage)
            return self._provider

    async def served_model(self) -> LoadedModel:
        """The model being served, for handlers on the event loop: from memory; only a cold
        start (loading the bundled model, the first look at storage) waits, in the inference
        pool, as a prediction would."""
        provider = self.provider
        if provider.is_loaded():
            return provider.current()
        return await self.pools.inference.run(provider.current)

    def promoter(self) -> Promoter:
        """Built on first use; a missing setting fails here with its name."""
        with self._promoter_lock:
            if self._promoter is None:
                self._promoter = self._build_promoter()
            return self._promoter

    async def feedback_store_async(self) -> FeedbackStore:
        """`feedback_store` for handlers on the event loop: built (the Azure SDK imported) in the
        storage pool, once."""
        store = self._feedback_store
        return store if store is not None else await self.pools.storage.run(self.feedback_store)

    def feedback_store(self) -> FeedbackStore:
        """Built on first use; without storage settings, corrections cannot be kept: each is
        refused as storage being unavailable, and the log names the missing setting."""
        store = self._feedback_store  # every correction asks: no lock once it is built
        if store is not None:
            return store
        with self._feedback_lock:
            if self._feedback_store is None:
                try:
                    configured = self.settings()
                except MissingSetting as error:
                    log.error("%s; corrections cannot be stored", error)
                    raise StorageUnavailable(str(error)) from error
                # Corrections only: the Azure SDK.
                from functions.feedback.store import FeedbackStore  # noqa: PLC0415
                from functions.storage.clients import container_client, serving_options  # noqa: PLC0415

                # A person waits for the answer: short timeouts and no retry, as serving.
                container = container_client(
                    configured, configured.feedback_container, **serving_options()
                )
                self._feedback_store = FeedbackStore(container)
            return self._feedback_store

    def feedback_limit(self) -> ClientRateLimit:
        """The limits on corrections (per client, per instance), from the settings on first use."""
        with self._feedback_limit_lock:
            if self._feedback_limit is None:
                self._feedback_limit = ClientRateLimit.from_settings(self.settings())
            return self._feedback_limit

    def serving_storage(self) -> tuple[ModelRegistry, float] | None:
        """The registry the provider follows, and how often; None (the bundled model only)
        without storage settings: serving must not depend on storage being configured."""
        try:
            configured = self.settings()
        except MissingSetting as error:
            log.error("%s; serving the bundled model only", error)
            return None
        # Only with storage settings: the Azure SDK.
        from functions.storage.clients import container_client, serving_options  # noqa: PLC0415
        from functions.storage.model_registry import ModelRegistry  # noqa: PLC0415

        # Serving runs beside predictions: short timeouts and no retry (see serving_options).
        registry = ModelRegistry(container_client(configured, **serving_options()))
        return registry, configured.refresh_seconds

    def _build_promoter(self) -> Promoter:
        configured = self.settings()
        # Promotion only: the gate and its trial, the Azure SDK.
        from functions.promotion.gate import GatePolicy  # noqa: PLC0415
        from functions.promotion.gate_set import load_gate_set  # noqa: PLC0415
        from functions.promotion.promoter import Promoter  # noqa: PLC0415
        from functions.storage.clients import bounded_retries, container_client  # noqa: PLC0415
        from functions.storage.model_registry import ModelRegistry  # noqa: PLC0415

        # Promotion holds a lease while it works: a few quick retries, never the SDK's 15 s wait.
        registry = ModelRegistry(container_client(configured, **bounded_retries()))
        registry.ensure_container()
        policy = GatePolicy(
            min_accuracy=configured.min_accuracy,
            max_regression=configured.max_regression,
            signing_key=configured.signing_key,
        )
        return Promoter(registry, policy, load_gate_set(), self.bundled.get())
