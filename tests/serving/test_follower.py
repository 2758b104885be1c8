"""Serving follows current.json: swaps to a promoted version, keeps serving through bad files
and unreachable storage, falls back to the bundled model, caches downloads by sha256."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest
from azure.storage.blob import ContainerClient, LinearRetry

from functions.api import handlers
from functions.composition import Services
from functions.serving.follower import PointerFollower
from functions.serving.listing import RegistryListing
from functions.serving.loaded_model import ModelHolder
from functions.serving.provider import (
    BUNDLED_MODEL,
    FIRST_CHECK_WAIT_SECONDS,
    BundledModel,
    ModelProvider,
)
from functions.storage.model_registry import ModelRegistry
from tests.helpers import call, http_request, onnx_bytes_with_version


def promote_by_hand(registry: ModelRegistry, version: str, content: bytes) -> str:
    """What the promoter leaves behind: the version stored and the pointer moved."""
    sha256 = hashlib.sha256(content).hexdigest()
    registry.store_version(version, content, {"sha256": sha256})
    registry.replace_pointer({"version": version, "sha256": sha256}, registry.read_pointer())
    return sha256


def follower_for(registry, bundled, tmp_path) -> PointerFollower:
    holder = ModelHolder()
    holder.swap(bundled)
    return PointerFollower(registry, holder, bundled, refresh_seconds=0.1, cache_dir=tmp_path)


def test_swaps_to_the_promoted_version(registry, bundled, tmp_path):
    follower = follower_for(registry, bundled, tmp_path)
    follower.check()
    assert follower.holder.current is bundled  # no current.json: the bundled model serves

    in_flight = follower.holder.current
    sha256 = promote_by_hand(registry, "v2", onnx_bytes_with_version(BUNDLED_MODEL, "v2"))
    follower.check()

    served = follower.holder.current
    assert (served.version, served.sha256, served.source) == ("v2", sha256, "storage")
    assert in_flight.version == bundled.version  # a request holding the old model keeps it
    assert (tmp_path / f"{sha256}.onnx").is_file()
    assert follower.state.reachable is True
    assert follower.state.pointer_version == "v2"


def test_unchanged_pointer_is_not_downloaded_again(registry, bundled, tmp_path):
    follower = follower_for(registry, bundled, tmp_path)
    promote_by_hand(registry, "v2", onnx_bytes_with_version(BUNDLED_MODEL, "v2"))
    follower.check()
    model = follower.holder.current
    follower.check()
    assert follower.holder.current is model
    assert follower.state.last_error is None  # "not modified" is no error


def test_downloads_come_from_the_cache(registry, bundled, tmp_path):
    promote_by_hand(registry, "v2", onnx_bytes_with_version(BUNDLED_MODEL, "v2"))
    follower_for(registry, bundled, tmp_path).check()
    registry.container.delete_blob("versions/v2.onnx")
    second = follower_for(registry, bundled, tmp_path)
    second.check()
    assert second.holder.current.version == "v2"


def test_a_failed_load_keeps_the_old_model(registry, bundled, tmp_path):
    follower = follower_for(registry, bundled, tmp_path)
    garbage = b"not a model"
    registry.container.upload_blob("versions/bad.onnx", garbage)
    pointer = {"version": "bad", "sha256": hashlib.sha256(garbage).hexdigest()}
    registry.replace_pointer(pointer, None)
    follower.check()
    assert follower.holder.current is bundled
    assert "cannot load" in follower.state.last_error
    follower.check()  # tried again: the pointer was not marked as followed
    assert follower.holder.current is bundled


def test_a_version_whose_bytes_differ_from_the_pointer_is_not_served(registry, bundled, tmp_path):
    follower = follower_for(registry, bundled, tmp_path)
    content = onnx_bytes_with_version(BUNDLED_MODEL, "v2")
    registry.store_version("v2", content, {"sha256": "x"})
    registry.replace_pointer({"version": "v2", "sha256": "0" * 64}, None)
    follower.check()
    assert follower.holder.current is bundled
    assert "sha256" in follower.state.last_error


def test_pointer_removed_means_bundled_again(registry, bundled, tmp_path):
    follower = follower_for(registry, bundled, tmp_path)
    promote_by_hand(registry, "v2", onnx_bytes_with_version(BUNDLED_MODEL, "v2"))
    follower.check()
    registry.container.delete_blob("current.json")
    follower.check()
    assert follower.holder.current is bundled


def test_unreachable_storage_keeps_serving_and_shows_in_health(bundled, monkeypatch):
    closed = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    )
    container = ContainerClient.from_connection_string(
        closed, "models", retry_policy=LinearRetry(backoff=0.1, retry_total=0)
    )
    provider = ModelProvider(BundledModel(), storage=lambda: (ModelRegistry(container), 60.0))
    services = Services(provider=provider)
    try:
        prediction = handlers.predict(http_request("POST", "predict", [0] * 784), services)
        assert prediction.status_code == 200
        assert prediction.headers["X-Model-Version"] == bundled.version
        health = call(handlers.health, http_request("GET", "health"), services)
        assert health.status_code == 200
        storage = json.loads(health.get_body())["storage"]
        assert storage["following"] is True
        assert storage["reachable"] is False
        assert storage["last_error"]
        assert storage["last_reached_at"] is None
        assert storage["seconds_since_reached"] is None
        # Storage down is a field of the answer, not a failed request.
        listing = call(handlers.models, http_request("GET", "models"), services)
        assert listing.status_code == 200
        answer = json.loads(listing.get_body())
        assert answer["current"]["version"] == bundled.version
        assert answer["listing"]["loaded"] is False
        assert answer["listing"]["last_error"]
        assert (answer["pointer"], answer["versions"], answer["decisions"]) == (None, [], [])
    finally:
        provider.stop()


def test_health_shows_when_storage_last_answered(registry, bundled, tmp_path):
    follower = follower_for(registry, bundled, tmp_path)
    assert follower.status()["seconds_since_reached"] is None  # never checked
    follower.check()
    status = follower.status()
    assert status["reachable"] is True
    assert status["last_reached_at"].endswith("Z")
    assert 0 <= status["seconds_since_reached"] < 60
    assert status["refresh_seconds"] == follower.refresh_seconds


def test_listing_not_read_yet_says_so(registry):
    answer = RegistryListing(registry, refresh_seconds=60).answer()
    assert (answer["pointer"], answer["versions"], answer["decisions"]) == (None, [], [])
    assert answer["listing"] == {
        "loaded": False,
        "as_of": None,
        "age_seconds": None,
        "refresh_seconds": 60,
        "last_error": None,
    }


def test_listing_keeps_the_last_read_through_a_failed_refresh(registry):
    promote_by_hand(registry, "v2", onnx_bytes_with_version(BUNDLED_MODEL, "v2"))
    registry.mark_promoted("v2")
    listing = RegistryListing(registry, refresh_seconds=60)
    listing.refresh()
    read = listing.answer()
    assert read["listing"]["loaded"] is True
    assert read["listing"]["last_error"] is None
    assert read["pointer"]["version"] == "v2"
    assert read["pointer_error"] is None
    assert [version["version"] for version in read["versions"]] == ["v2"]

    def storage_fails():
        raise ConnectionError("storage went away")

    registry.versions = storage_fails
    listing.refresh()
    after = listing.answer()
    assert "storage went away" in after["listing"]["last_error"]
    assert after["listing"]["as_of"] == read["listing"]["as_of"]
    assert after["listing"]["age_seconds"] >= read["listing"]["age_seconds"]
    assert after["pointer"] == read["pointer"]
    assert after["versions"] == read["versions"]


@pytest.mark.parametrize(
    "damaged",
    [
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"version": "v3"}',
        b'{"version": "../x", "sha256": 1}',
    ],
    ids=["not JSON", "not UTF-8", "not an object", "no sha256", "bad fields"],
)
def test_a_damaged_pointer_is_shown_beside_decisions_that_keep_coming(registry, damaged):
    promote_by_hand(registry, "v2", onnx_bytes_with_version(BUNDLED_MODEL, "v2"))
    registry.mark_promoted("v2")
    registry.append_audit({"version": "v2", "decision": "accepted"})
    registry.container.upload_blob("current.json", damaged, overwrite=True)
    listing = RegistryListing(registry, refresh_seconds=60)
    listing.refresh()
    registry.append_audit({"version": "v3", "decision": "rejected", "check": "loads"})
    listing.refresh()

    answer = listing.answer()
    assert answer["pointer"] is None
    assert answer["pointer_error"].startswith("current.json ")
    assert answer["listing"]["loaded"] is True
    assert answer["listing"]["last_error"] is None
    assert [d["version"] for d in answer["decisions"]] == ["v3", "v2"]  # still read, newest first
    assert [version["version"] for version in answer["versions"]] == ["v2"]


def test_a_damaged_pointer_keeps_the_served_version_and_shows_in_health(
    registry, bundled, tmp_path, caplog
):
    follower = follower_for(registry, bundled, tmp_path)
    promote_by_hand(registry, "v2", onnx_bytes_with_version(BUNDLED_MODEL, "v2"))
    follower.check()
    served = follower.holder.current
    assert served.version == "v2"

    registry.container.upload_blob("current.json", b"{not json", overwrite=True)
    follower.check()
    follower.check()  # not retried until it changes: logged once

    assert follower.holder.current is served  # the last good version keeps serving
    status = follower.status()
    assert status["reachable"] is True
    assert status["last_error"] is None  # storage answered
    assert status["pointer_error"].startswith("current.json is not valid JSON")
    damaged = [r for r in caplog.records if "current.json is not valid JSON" in r.getMessage()]
    assert len(damaged) == 1
    assert damaged[0].levelname == "ERROR"

    cold = follower_for(registry, bundled, tmp_path / "cold")
    cold.holder.swap(bundled)
    cold.check()
    assert cold.holder.current is bundled  # a cold instance: treated as absent

    promote_by_hand(registry, "v3", onnx_bytes_with_version(BUNDLED_MODEL, "v3"))
    follower.check()
    assert follower.holder.current.version == "v3"
    assert follower.status()["pointer_error"] is None


def test_models_answers_at_once_while_the_first_listing_is_slow(registry, bundled, monkeypatch):
    """A cold instance waits a bounded time for its first listing, never the request's own
    read: storage that is slower answers "not loaded yet", and the thread fills it in later."""
    released = threading.Event()
    real_versions = registry.versions

    def slow_versions():
        released.wait(60)
        return real_versions()

    registry.versions = slow_versions
    provider = ModelProvider(BundledModel(), storage=lambda: (registry, 0.2))
    services = Services(provider=provider)
    try:
        started = time.monotonic()
        first = json.loads(
            call(handlers.models, http_request("GET", "models"), services).get_body()
        )
        cold = time.monotonic() - started
        assert first["listing"]["loaded"] is False
        started = time.monotonic()
        again = json.loads(
            call(handlers.models, http_request("GET", "models"), services).get_body()
        )
        warm = time.monotonic() - started
        assert again["listing"]["loaded"] is False
        assert cold < FIRST_CHECK_WAIT_SECONDS + 10  # generous: a loaded 2-core machine
        assert warm < 2.0  # from memory: no wait on the slow read at all
        released.set()
        deadline = time.monotonic() + 30
        while not first["listing"]["loaded"] and time.monotonic() < deadline:
            time.sleep(0.1)
            first = json.loads(
                call(handlers.models, http_request("GET", "models"), services).get_body()
            )
        assert first["listing"]["loaded"] is True
        assert first["listing"]["last_error"] is None
    finally:
        released.set()
        provider.stop()


def test_models_without_storage_lists_the_bundled_model(bundled, monkeypatch):
    provider = ModelProvider(BundledModel(), storage=lambda: None)
    services = Services(provider=provider)
    answer = json.loads(call(handlers.models, http_request("GET", "models"), services).get_body())
    assert answer["current"]["version"] == bundled.version
    assert [version["version"] for version in answer["versions"]] == [bundled.version]
    assert answer["pointer"] is None
    assert answer["listing"]["loaded"] is True


def test_storage_that_cannot_be_set_up_still_serves(monkeypatch):
    def malformed():
        raise ValueError("Connection string is either blank or malformed.")

    provider = ModelProvider(BundledModel(), storage=malformed)
    services = Services(provider=provider)
    assert handlers.predict(http_request("POST", "predict", [0] * 784), services).status_code == 200
    health = json.loads(call(handlers.health, http_request("GET", "health"), services).get_body())
    assert health["storage"]["following"] is False
    assert "malformed" in health["storage"]["last_error"]


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "fast"])
def test_a_malformed_number_setting_fails_naming_it(monkeypatch, value):
    from functions.settings import MissingSetting, settings  # noqa: PLC0415

    monkeypatch.setenv("MODELS_STORAGE", "UseDevelopmentStorage=true")
    monkeypatch.setenv("PROMOTION_MIN_ACCURACY", value)
    settings.cache_clear()
    try:
        with pytest.raises(MissingSetting, match="PROMOTION_MIN_ACCURACY"):
            settings()
    finally:
        settings.cache_clear()


def test_a_missing_storage_setting_is_named(monkeypatch):
    from functions.settings import MissingSetting, settings  # noqa: PLC0415

    monkeypatch.delenv("MODELS_STORAGE", raising=False)
    monkeypatch.delenv("MODELS_STORAGE__blobServiceUri", raising=False)
    settings.cache_clear()
    try:
        with pytest.raises(MissingSetting, match="MODELS_STORAGE is not set"):
            settings()
    finally:
        settings.cache_clear()


def test_a_non_finite_test_accuracy_is_no_number_in_json(tmp_path):
    import onnx  # noqa: PLC0415

    from functions.serving.loaded_model import load_model  # noqa: PLC0415
    from tests.helpers import tiny_model  # noqa: PLC0415

    model = onnx.load_from_string(tiny_model("odd"))
    for prop in model.metadata_props:
        if prop.key == "test_accuracy":
            prop.value = "nan"
    loaded = load_model(model.SerializeToString(), source="storage")
    assert loaded.describe()["test_accuracy"] is None
    json.dumps(loaded.describe(), allow_nan=False)  # raises on NaN
