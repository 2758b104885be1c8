"""/api/models and /api/health never block predictions: they answer from memory while model
storage hangs (a real Azurite stopped with SIGSTOP), health says storage is unreachable within a
few refresh periods, and predictions keep flowing while /api/models is hammered."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from azure.core.exceptions import ServiceResponseError
from azure.storage.blob import ContainerClient

from functions.serving.follower import PointerFollower
from functions.serving.listing import RegistryListing
from functions.serving.loaded_model import ModelHolder
from functions.serving.provider import BUNDLED_MODEL
from functions.storage.clients import SERVING_READ_TIMEOUT_SECONDS, is_unreachable, serving_options
from functions.storage.model_registry import ModelRegistry
from tests.helpers import onnx_bytes_with_version, timed_request
from tests.stack import Azurite, running_azurite, running_local_host

pytestmark = pytest.mark.slow

REFRESH_SECONDS = 0.5
# Storage that hangs is noticed within one read timeout of the next check; the rest is slack
# for a loaded 2-core machine.
NOTICED_WITHIN_SECONDS = SERVING_READ_TIMEOUT_SECONDS + 10 * REFRESH_SECONDS + 15
ANSWER_BOUND_SECONDS = 2.0  # an answer from memory; the old code waited 20 s and more
PROMOTED = "status-v2"
ONE_IMAGE = json.dumps({"pixels": [0] * 300 + [255] * 100 + [0] * 384}).encode()


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> Iterator[Azurite]:
    """An Azurite of this module's own, so that freezing it disturbs no other test."""
    with running_azurite(tmp_path_factory.mktemp("frozen-azurite")) as azurite:
        yield azurite


@pytest.fixture(scope="module")
def registry(storage) -> ModelRegistry:
    """The models container with a promoted version in it, as the promoter leaves it."""
    container = ContainerClient.from_connection_string(storage.connection_string, "models")
    container.create_container()
    registry = ModelRegistry(container)
    content = onnx_bytes_with_version(BUNDLED_MODEL, PROMOTED)
    sha256 = hashlib.sha256(content).hexdigest()
    registry.store_version(PROMOTED, content, {"sha256": sha256})
    registry.mark_promoted(PROMOTED)
    registry.replace_pointer({"version": PROMOTED, "sha256": sha256}, None)
    registry.append_audit({"version": PROMOTED, "decision": "accepted"})
    return registry


@pytest.fixture(scope="module")
def api(storage, registry, tmp_path_factory) -> Iterator[str]:
    """The app served by `python -m local_host` over that Azurite, checking it twice a second."""
    environment = {
        **os.environ,
        "MODELS_STORAGE": storage.connection_string,
        "MODELS_CONTAINER": "models",
        "MODEL_REFRESH_SECONDS": str(REFRESH_SECONDS),
    }
    log_path = tmp_path_factory.mktemp("status-host") / "host.log"
    with running_local_host(environment, log_path) as url:
        yield url


class KeptAliveClient:
    """One keep-alive connection, as a busy client holds it: a flood of requests, not of
    connections (the host caps those, and that is not what this measures)."""

    def __init__(self, api: str) -> None:
        parts = urllib.parse.urlsplit(api)
        self.prefix = parts.path
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def send(self, route: str, body: bytes | None = None) -> tuple[int, bytes, float]:
        headers = {"Content-Type": "application/json"} if body else {}
        started = time.monotonic()
        self.connection.request("POST" if body else "GET", f"{self.prefix}/{route}", body, headers)
        response = self.connection.getresponse()
        return response.status, response.read(), time.monotonic() - started

    def close(self) -> None:
        self.connection.close()


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(REFRESH_SECONDS / 2)
    pytest.fail(f"not within {timeout:g} s: {what}")


def storage_status(api: str) -> dict:
    status, health, seconds = timed_request(f"{api}/health")
    assert status == 200
    assert seconds < ANSWER_BOUND_SECONDS, f"/api/health took {seconds:.2f} s"
    return health["storage"]


def listing_of(api: str) -> dict:
    status, answer, seconds = timed_request(f"{api}/models")
    assert status == 200
    assert seconds < ANSWER_BOUND_SECONDS, f"/api/models took {seconds:.2f} s"
    return answer


def percentile_ms(latencies: list[float], q: float) -> float:
    return round(float(np.percentile(latencies, q)) * 1000, 1)


# --- over HTTP, through the local host --------------------------------------------------------


def test_models_and_health_answer_from_memory_while_storage_is_frozen(api, storage):
    wait_until(
        lambda: listing_of(api)["listing"]["loaded"] and storage_status(api)["reachable"],
        NOTICED_WITHIN_SECONDS,
        "the listing loaded and storage reachable",
    )
    before = listing_of(api)
    assert before["pointer"]["version"] == PROMOTED
    assert [version["version"] for version in before["versions"]] == [PROMOTED]
    assert before["current"]["version"] == PROMOTED

    with storage.frozen():
        frozen_at = time.monotonic()
        unreachable = wait_until(
            lambda: (status := storage_status(api))["reachable"] is False and status,
            NOTICED_WITHIN_SECONDS,
            "/api/health says storage is unreachable",
        )
        noticed_after = time.monotonic() - frozen_at
        assert "timed out" in unreachable["last_error"]  # a read timeout counts
        assert unreachable["seconds_since_reached"] >= SERVING_READ_TIMEOUT_SECONDS / 2

        failed = wait_until(
            lambda: (answer := listing_of(api))["listing"]["last_error"] and answer,
            NOTICED_WITHIN_SECONDS,
            "/api/models shows that its refresh failed",
        )
        # What was read before is still shown, with its age.
        assert failed["listing"]["loaded"] is True
        assert failed["listing"]["age_seconds"] >= SERVING_READ_TIMEOUT_SECONDS / 2
        assert [version["version"] for version in failed["versions"]] == [PROMOTED]
        assert failed["current"]["version"] == PROMOTED

        status, prediction, _ = timed_request(f"{api}/predict", ONE_IMAGE)
        assert status == 200
        assert prediction["model_version"] == PROMOTED

    wait_until(
        lambda: storage_status(api)["reachable"] is True,
        NOTICED_WITHIN_SECONDS,
        "/api/health says storage is reachable again",
    )
    wait_until(
        lambda: listing_of(api)["listing"]["last_error"] is None,
        NOTICED_WITHIN_SECONDS,
        "/api/models refreshed again",
    )
    print(f"\nstorage frozen: /api/health said unreachable after {noticed_after:.1f} s")


def test_predictions_keep_flowing_while_models_is_flooded_and_storage_frozen(api, storage):
    quiet = [timed_request(f"{api}/predict", ONE_IMAGE)[2] for _ in range(100)]
    with storage.frozen():
        frozen_only = [timed_request(f"{api}/predict", ONE_IMAGE)[2] for _ in range(100)]

    latencies: list[float] = []
    failures: list[str] = []
    listings = 0
    stop = threading.Event()

    def flood() -> None:
        nonlocal listings
        client = KeptAliveClient(api)
        try:
            while not stop.is_set():
                status, content, _ = client.send("models")
                listings += 1
                if status != 200:
                    failures.append(f"/api/models {status}: {content[:300]!r}")
        finally:
            client.close()

    def predict_until_stopped() -> None:
        client = KeptAliveClient(api)
        try:
            while not stop.is_set():
                status, content, seconds = client.send("predict", ONE_IMAGE)
                latencies.append(seconds)
                if status != 200:
                    failures.append(f"/api/predict {status}: {content[:300]!r}")
        finally:
            client.close()

    with storage.frozen(), ThreadPoolExecutor(max_workers=18) as pool:
        running = [pool.submit(flood) for _ in range(16)]
        running += [pool.submit(predict_until_stopped) for _ in range(2)]
        time.sleep(2 * SERVING_READ_TIMEOUT_SECONDS)  # over a storage read timeout, twice
        stop.set()
        for future in running:
            future.result(timeout=120)

    assert not failures, failures[:5]
    assert len(latencies) > 20, "predictions stalled while /api/models was flooded"
    assert max(latencies) < 10.0, f"a prediction waited {max(latencies):.1f} s"
    print(
        f"\npredict quiet p50 {percentile_ms(quiet, 50)} ms p99 {percentile_ms(quiet, 99)} ms; "
        f"storage frozen: p50 {percentile_ms(frozen_only, 50)} ms "
        f"p99 {percentile_ms(frozen_only, 99)} ms; "
        f"storage frozen + 16 clients on /api/models ({listings} answers): "
        f"{len(latencies)} predictions, p50 {percentile_ms(latencies, 50)} ms "
        f"p99 {percentile_ms(latencies, 99)} ms"
    )


# --- the serving side's storage calls, directly ------------------------------------------------


def test_a_hung_storage_call_from_serving_ends_within_its_read_timeout(storage, registry):
    client = ContainerClient.from_connection_string(
        storage.connection_string, "models", **serving_options()
    )
    with storage.frozen():
        started = time.monotonic()
        with pytest.raises(ServiceResponseError) as raised:
            ModelRegistry(client).read_pointer()
        waited = time.monotonic() - started
    assert is_unreachable(raised.value)
    # No retry: one read timeout, not two or more, plus slack for a loaded machine.
    assert waited < 2 * SERVING_READ_TIMEOUT_SECONDS, f"waited {waited:.1f} s"


def test_follower_and_listing_count_a_timeout_as_unreachable(storage, registry, bundled, tmp_path):
    served = ModelRegistry(
        ContainerClient.from_connection_string(
            storage.connection_string, "models", **serving_options()
        )
    )
    holder = ModelHolder()
    holder.swap(bundled)
    follower = PointerFollower(served, holder, bundled, REFRESH_SECONDS, cache_dir=tmp_path)
    listing = RegistryListing(served, REFRESH_SECONDS)
    follower.check()
    listing.refresh()
    assert follower.state.reachable is True
    assert holder.current.version == PROMOTED
    read_at = listing.answer()["listing"]["as_of"]

    with storage.frozen():
        follower.check()
        listing.refresh()

    status = follower.status()
    assert status["reachable"] is False
    assert "timed out" in status["last_error"]
    assert status["seconds_since_reached"] >= SERVING_READ_TIMEOUT_SECONDS / 2
    assert holder.current.version == PROMOTED  # the served model stays
    answer = listing.answer()
    assert answer["listing"]["as_of"] == read_at  # the last good listing stays, with its age
    assert "timed out" in answer["listing"]["last_error"]
    assert [version["version"] for version in answer["versions"]] == [PROMOTED]


# --- a slow model, over HTTP --------------------------------------------------------------------

SLOW_VERSION = "status-slow"
# Slow, yet within what a model may take while it loads (watchdog.LOAD_BOUND_SECONDS): it is
# served, and each prediction holds an inference thread for about this long.
SLOW_SECONDS = 1.0
SLOW_PREDICTIONS = 3


def test_health_answers_while_a_slow_inference_runs(api, registry):
    """Every prediction runs in the inference pool: a model that takes a second per inference
    holds an inference thread, never the event loop that /api/health and /api/models answer on.
    (Before, a small body ran on the loop: a hanging model froze health too.)"""
    from tests.bad_models import slow_model_bytes  # noqa: PLC0415 - onnx: this test only

    content = slow_model_bytes(SLOW_VERSION, SLOW_SECONDS)
    sha256 = hashlib.sha256(content).hexdigest()
    registry.store_version(SLOW_VERSION, content, {"sha256": sha256})
    registry.mark_promoted(SLOW_VERSION)
    served = registry.read_pointer()
    registry.replace_pointer(
        {"version": SLOW_VERSION, "sha256": sha256, "previous_version": PROMOTED}, served
    )
    try:
        wait_until(
            lambda: timed_request(f"{api}/health")[1]["model"]["version"] == SLOW_VERSION,
            NOTICED_WITHIN_SECONDS,
            "the slow model served",
        )

        def predict_slowly() -> list[tuple[int, dict, float]]:
            return [timed_request(f"{api}/predict", ONE_IMAGE) for _ in range(SLOW_PREDICTIONS)]

        waits: list[float] = []
        with ThreadPoolExecutor(max_workers=1) as client:
            predicting = client.submit(predict_slowly)
            time.sleep(0.2)  # the first inference is under way
            while not predicting.done():
                for route in ("health", "models"):
                    status, _, seconds = timed_request(f"{api}/{route}")
                    assert status == 200
                    waits.append(seconds)
                time.sleep(0.05)
            predictions = predicting.result()
        assert [(status, answer["model_version"]) for status, answer, _ in predictions] == [
            (200, SLOW_VERSION)
        ] * SLOW_PREDICTIONS
        slowest_prediction = max(seconds for _, _, seconds in predictions)
        assert slowest_prediction >= SLOW_SECONDS / 2  # it really was slow
        assert len(waits) >= 10
        assert max(waits) < SLOW_SECONDS / 2, waits
        print(
            f"\n{SLOW_PREDICTIONS} inferences of up to {slowest_prediction:.2f} s: {len(waits)} "
            f"answers from /api/health and /api/models meanwhile, "
            f"the slowest {max(waits) * 1000:.0f} ms"
        )
    finally:
        registry.replace_pointer(
            {"version": PROMOTED, "sha256": served.document["sha256"]}, registry.read_pointer()
        )
        wait_until(
            lambda: timed_request(f"{api}/health")[1]["model"]["version"] == PROMOTED,
            NOTICED_WITHIN_SECONDS,
            "the promoted model served again",
        )
