"""Promotion against a real Azurite container: the gate, the pointer, the audit, rollbacks,
duplicates, races and the reconciler."""

from __future__ import annotations

import hashlib
import json
import os
import threading

import onnx
import pytest

from conversion.publish import PublishError, publish, rollback
from functions import signing
from functions.api import handlers as api
from functions.composition import Services
from functions.promotion.gate import GatePolicy
from functions.promotion.gate_set import load_gate_set
from functions.promotion.promoter import Promoter
from functions.serving.provider import BUNDLED_MODEL, BundledModel, ModelProvider
from functions.storage.model_registry import ModelRegistry
from tests.bad_models import misreading_model_bytes
from tests.helpers import call, http_request, onnx_bytes_with_version, tiny_model

POLICY = GatePolicy(min_accuracy=0.98, max_regression=0.005, signing_key=None)


def make_promoter(registry, bundled, policy=POLICY) -> Promoter:
    return Promoter(registry, policy, load_gate_set(), bundled)


def good(version: str) -> bytes:
    return onnx_bytes_with_version(BUNDLED_MODEL, version)


def good_with(**metadata: str) -> bytes:
    """The bundled network with other metadata: other bytes, the same quality."""
    model = onnx.load(BUNDLED_MODEL)
    for prop in model.metadata_props:
        prop.value = metadata.get(prop.key, prop.value)
    return model.SerializeToString()


def drop(container, version: str, content: bytes, metadata=None) -> str:
    """Upload straight into incoming/ (no publisher: some tests need odd metadata)."""
    container.upload_blob(f"incoming/{version}.onnx", content, overwrite=True, metadata=metadata)
    return f"{version}.onnx"


def pointer(container) -> dict | None:
    blob = container.get_blob_client("current.json")
    return json.loads(blob.download_blob().readall()) if blob.exists() else None


def audit(container) -> list[dict]:
    blob = container.get_blob_client("audit/promotions.jsonl")
    if not blob.exists():
        return []
    return [json.loads(line) for line in blob.download_blob().readall().decode().splitlines()]


def incoming(container) -> list[str]:
    return [blob.name for blob in container.list_blobs("incoming/")]


def test_accepted_version_moves_the_pointer(container, registry, bundled):
    publish(container, good("v2"), "v2")
    decision = make_promoter(registry, bundled).handle("v2.onnx")

    assert decision.decision == "accepted"
    current = pointer(container)
    assert current["version"] == "v2"
    assert current["previous_version"] == bundled.version
    assert current["gate"]["gate_accuracy"] >= 0.98
    assert current["gate"]["agreement_with_current"] == 1.0  # the same network as the bundled
    assert container.get_blob_client("versions/v2.onnx").exists()
    assert incoming(container) == []
    (line,) = audit(container)
    assert line["decision"] == "accepted"
    assert line["version"] == "v2"
    assert container.get_blob_client("audit/promotions.jsonl").get_blob_properties().blob_type == (
        "AppendBlob"
    )


REFUSED = {
    "random bytes": (lambda: os.urandom(4096), "loads"),
    "truncated model": (lambda: good("cut")[:200_000], "loads"),
    "channels-first input": (lambda: tiny_model("cut", channels_first=True), "contract"),
    "a fixed batch of one": (lambda: tiny_model("cut", fixed_batch=True), "contract"),
    "logits output": (lambda: tiny_model("cut", softmax=False), "contract"),
    "NaN output": (lambda: tiny_model("cut", nan=True), "contract"),
    "accuracy under the floor": (lambda: tiny_model("cut"), "accuracy"),
    "oversized file": (lambda: b"\0" * (16 * 1024 * 1024 + 1), "size"),
}


@pytest.mark.parametrize(("make", "check"), REFUSED.values(), ids=REFUSED.keys())
def test_refused_files_leave_the_served_model_alone(container, registry, bundled, make, check):
    promoter = make_promoter(registry, bundled)
    publish(container, good("v1"), "v1")
    promoter.handle("v1.onnx")
    before = pointer(container)

    drop(container, "cut", make())
    decision = promoter.handle("cut.onnx")

    assert decision.decision == "rejected"
    assert decision.record["check"] == check
    assert pointer(container) == before
    rejection = json.loads(container.download_blob("rejected/cut.json").readall())
    assert rejection["check"] == check
    assert rejection["reason"]
    assert [line["decision"] for line in audit(container)] == ["accepted", "rejected"]
    assert incoming(container) == []


def test_regression_against_the_current_model_is_refused(container, registry, bundled):
    lenient = GatePolicy(min_accuracy=0.0, max_regression=0.005, signing_key=None)
    drop(container, "worse", tiny_model("worse"))
    decision = make_promoter(registry, bundled, lenient).handle("worse.onnx")
    assert decision.record["check"] == "regression"
    assert "below the current model" in decision.record["reason"]
    assert pointer(container) is None


def test_invalid_version_name_is_refused(container, registry, bundled):
    container.upload_blob("incoming/bad name!.onnx", good("bad name!"))
    promoter = make_promoter(registry, bundled)
    decision = promoter.handle("bad name!.onnx")
    assert decision.record["check"] == "name"
    # Refused before any storage call under that name: the file is left where it is, unleased.
    assert incoming(container) == ["incoming/bad name!.onnx"]
    blob = container.get_blob_client("incoming/bad name!.onnx").get_blob_properties()
    assert blob.lease.state == "available"
    name_hash = hashlib.sha256(b"bad name!.onnx").hexdigest()[:12]
    assert [blob.name for blob in container.list_blobs("rejected/")] == [
        f"rejected/invalid-name-{name_hash}.json"
    ]
    # Recorded once: neither the reconciler nor a repeated event refuses it again.
    assert promoter.reconcile() == []
    assert promoter.handle("bad name!.onnx") is None
    assert [line["check"] for line in audit(container)] == ["name"]


def test_sha256_metadata_must_match_the_content(container, registry, bundled):
    drop(container, "v2", good("v2"), metadata={"sha256": "0" * 64})
    decision = make_promoter(registry, bundled).handle("v2.onnx")
    assert decision.record["check"] == "integrity"
    assert pointer(container) is None


@pytest.mark.parametrize("signature", [None, "wrong"], ids=["missing", "wrong"])
def test_a_signing_key_requires_a_valid_signature(container, registry, bundled, signature):
    key = b"s3cret"
    signed = GatePolicy(min_accuracy=0.98, max_regression=0.005, signing_key=key)
    metadata = {"signature": signing.signature("0" * 64, key) if signature == "wrong" else None}
    drop(container, "v2", good("v2"), metadata={k: v for k, v in metadata.items() if v})
    decision = make_promoter(registry, bundled, signed).handle("v2.onnx")
    assert decision.record["check"] == "integrity"
    assert pointer(container) is None
    publish(container, good("v3"), "v3", signing_key=key)
    assert make_promoter(registry, bundled, signed).handle("v3.onnx").decision == "accepted"


def test_a_second_event_changes_nothing(container, registry, bundled):
    promoter = make_promoter(registry, bundled)
    publish(container, good("v2"), "v2")
    assert promoter.handle("v2.onnx").decision == "accepted"
    etag = container.get_blob_client("current.json").get_blob_properties().etag
    assert promoter.handle("v2.onnx") is None
    assert container.get_blob_client("current.json").get_blob_properties().etag == etag
    assert len(audit(container)) == 1


def test_a_version_is_immutable(container, registry, bundled):
    promoter = make_promoter(registry, bundled)
    publish(container, good("v2"), "v2")
    promoter.handle("v2.onnx")
    publish(container, good("v2"), "v2")  # the same bytes again, while v2 is served
    assert promoter.handle("v2.onnx").decision == "unchanged"
    different = good_with(version="v2", source_commit="another build")  # passes every gate
    drop(container, "v2", different)
    decision = promoter.handle("v2.onnx")
    assert decision.decision == "rejected"
    assert decision.record["check"] == "immutable"
    assert pointer(container)["sha256"] != decision.record["sha256"]


def test_two_versions_at_the_same_moment(container, registry, bundled):
    for version in ("left", "right"):
        publish(container, good(version), version)
    start = threading.Barrier(2)
    decisions = {}

    def promote(version):
        promoter = make_promoter(registry, bundled)
        start.wait()
        decisions[version] = promoter.handle(f"{version}.onnx")

    threads = [threading.Thread(target=promote, args=(v,)) for v in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert {d.decision for d in decisions.values()} == {"accepted"}
    assert sorted(line["version"] for line in audit(container)) == ["left", "right"]
    final = pointer(container)
    other = "right" if final["version"] == "left" else "left"
    # No lost update: the pointer's history runs bundled -> first -> second.
    assert final["previous_version"] == other
    assert decisions[other].record["previous_version"] == bundled.version


def test_rollback_by_dropping_an_earlier_version_again(container, registry, bundled):
    promoter = make_promoter(registry, bundled)
    for version in ("v2", "v3"):
        publish(container, good(version), version)
        promoter.handle(f"{version}.onnx")
    assert pointer(container)["version"] == "v3"

    path = rollback(container)
    assert path == "incoming/v2.onnx"
    decision = promoter.handle("v2.onnx")

    assert decision.decision == "rolled_back"
    assert pointer(container)["version"] == "v2"
    assert pointer(container)["previous_version"] == "v3"
    assert pointer(container)["gate"]["gate_accuracy"] >= 0.98  # its figures from back then
    assert [line["decision"] for line in audit(container)] == [
        "accepted",
        "accepted",
        "rolled_back",
    ]


def test_the_reconciler_decides_what_no_event_reached(container, registry, bundled):
    publish(container, good("v2"), "v2")
    drop(container, "junk", b"not a model")
    decisions = make_promoter(registry, bundled).reconcile()
    assert sorted((d.version, d.decision) for d in decisions) == [
        ("junk", "rejected"),
        ("v2", "accepted"),
    ]
    assert incoming(container) == []
    assert pointer(container)["version"] == "v2"


def store_and_point(registry: ModelRegistry, version: str, content: bytes, replace=None) -> None:
    """Leaves storage as if `version` had been promoted."""
    sha256 = hashlib.sha256(content).hexdigest()
    registry.store_version(version, content, {"sha256": sha256, "promoted": "true"})
    (replace or registry.replace_pointer)(
        {"version": version, "sha256": sha256, "previous_version": None}, registry.read_pointer()
    )


def test_a_pointer_conflict_is_retried_and_keeps_the_history(container, registry, bundled):
    publish(container, good("mine"), "mine")
    real_replace = registry.replace_pointer
    calls = []

    def another_promotion_lands_first(document, expected):
        if not calls:  # between this decision's read and write, "theirs" is promoted
            store_and_point(registry, "theirs", good("theirs"), real_replace)
        calls.append(document["version"])
        real_replace(document, expected)

    registry.replace_pointer = another_promotion_lands_first
    decision = make_promoter(registry, bundled).handle("mine.onnx")

    assert decision.decision == "accepted"
    assert calls == ["mine", "mine"]  # refused once on the ETag, then written
    assert pointer(container)["version"] == "mine"
    assert pointer(container)["previous_version"] == "theirs"


def test_a_better_version_promoted_meanwhile_is_a_regression_gate(container, registry, bundled):
    lenient = GatePolicy(min_accuracy=0.0, max_regression=0.005, signing_key=None)
    store_and_point(registry, "weak", misreading_model_bytes("weak", 3))
    drop(container, "weak2", misreading_model_bytes("weak2", 3))  # as good as "weak"
    real_replace = registry.replace_pointer

    def strong_version_lands_first(document, expected):
        registry.replace_pointer = real_replace
        store_and_point(registry, "strong", good("strong"))
        real_replace(document, expected)  # refused: current.json changed

    registry.replace_pointer = strong_version_lands_first
    decision = make_promoter(registry, bundled, lenient).handle("weak2.onnx")

    assert decision.decision == "rejected"
    assert decision.record["check"] == "regression"
    assert "strong" in decision.record["reason"]
    assert pointer(container)["version"] == "strong"
    # Stored before the re-gate refused it, but never served: a second drop is judged in full.
    assert {v["version"] for v in registry.versions()} == {"weak", "strong"}
    drop(container, "weak2", misreading_model_bytes("weak2", 3))
    again = make_promoter(registry, bundled, lenient).handle("weak2.onnx")
    assert (again.decision, again.record["check"]) == ("rejected", "regression")


def test_a_file_being_decided_elsewhere_is_left_alone(container, registry, bundled):
    publish(container, good("v2"), "v2")
    lease = container.get_blob_client("incoming/v2.onnx").acquire_lease(lease_duration=15)
    assert make_promoter(registry, bundled).handle("v2.onnx") is None
    assert incoming(container) == ["incoming/v2.onnx"]
    lease.release()


def test_the_reconciler_goes_on_past_a_file_it_cannot_decide(container, registry, bundled):
    publish(container, good("v2"), "v2")
    drop(container, "a-first", b"anything")
    real_claim = registry.claim_incoming

    def storage_fails_for_the_first(candidate, max_bytes):
        if candidate.name == "a-first.onnx":
            raise ConnectionError("storage hiccup")
        return real_claim(candidate, max_bytes)

    registry.claim_incoming = storage_fails_for_the_first
    decisions = make_promoter(registry, bundled).reconcile()
    assert [(d.version, d.decision) for d in decisions] == [("v2", "accepted")]
    assert incoming(container) == ["incoming/a-first.onnx"]  # left for the next round


def test_models_endpoint_shows_versions_figures_and_decisions(
    container, registry, bundled, monkeypatch
):
    promoter = make_promoter(registry, bundled)
    publish(container, good("v2"), "v2")
    promoter.handle("v2.onnx")
    drop(container, "junk", b"junk")
    promoter.handle("junk.onnx")
    provider = ModelProvider(BundledModel(), storage=lambda: (registry, 60.0))
    services = Services(provider=provider)
    try:
        answer = json.loads(call(api.models, http_request("GET", "models"), services).get_body())
    finally:
        provider.stop()

    assert answer["current"]["version"] == "v2"
    assert answer["current"]["source"] == "storage"
    assert answer["pointer"]["previous_version"] == bundled.version
    (version,) = answer["versions"]
    assert version["version"] == "v2"
    assert version["gate"]["gate_accuracy"] >= 0.98
    assert [d["decision"] for d in answer["decisions"]] == ["rejected", "accepted"]  # newest first
    assert answer["decisions"][0]["check"] == "loads"


def test_a_decision_broken_off_after_storing_is_judged_in_full_again(container, registry, bundled):
    publish(container, good("v2"), "v2")
    real_replace = registry.replace_pointer

    def storage_fails_once(document, expected):
        registry.replace_pointer = real_replace
        raise ConnectionError("storage went away mid-decision")

    registry.replace_pointer = storage_fails_once
    with pytest.raises(ConnectionError):
        make_promoter(registry, bundled).handle("v2.onnx")
    assert incoming(container) == ["incoming/v2.onnx"]  # undecided: still there, lease freed

    decision = make_promoter(registry, bundled).handle("v2.onnx")
    assert decision.decision == "accepted"  # not a "rollback" of a version never served
    assert decision.record["figures"]["gate_accuracy"] >= 0.98


def test_rollback_works_back_to_the_bundled_model(container, registry, bundled, tmp_path):
    """The previous version is the bundled one, which is not in storage: the publisher drops
    its own bundled file, and the promoter takes its bundled model back as a rollback (no
    quality gates, its trial still runs). Before, the publisher refused."""
    promoter = make_promoter(registry, bundled)
    publish(container, good("v2"), "v2")
    promoter.handle("v2.onnx")
    assert pointer(container)["previous_version"] == bundled.version

    path = rollback(container)
    assert path == f"incoming/{bundled.version}.onnx"
    decision = promoter.handle(f"{bundled.version}.onnx")

    assert decision.decision == "rolled_back"
    current = pointer(container)
    assert (current["version"], current["sha256"]) == (bundled.version, bundled.sha256)
    assert current["previous_version"] == "v2"
    assert [line["decision"] for line in audit(container)] == ["accepted", "rolled_back"]
    # And forward again: the previous version is v2, stored.
    assert rollback(container) == "incoming/v2.onnx"

    # Serving takes the bundled model from memory: nothing to download.
    from functions.serving.follower import PointerFollower  # noqa: PLC0415
    from functions.serving.loaded_model import ModelHolder  # noqa: PLC0415

    holder = ModelHolder()
    holder.swap(bundled)
    follower = PointerFollower(registry, holder, bundled, 60.0, cache_dir=tmp_path)
    follower.check()
    assert holder.current is bundled


def test_a_new_apps_bundled_model_published_over_an_older_version_is_judged_in_full(
    container, registry, bundled
):
    """An app deployed with a new bundled model still serves what current.json names; the
    bundled file, never served here, is promoted as any new version: every gate, its figures
    recorded, decision accepted (not a rollback)."""
    store_and_point(registry, "older", misreading_model_bytes("older", 1))
    publish(container, BUNDLED_MODEL.read_bytes(), bundled.version)
    decision = make_promoter(registry, bundled).handle(f"{bundled.version}.onnx")

    assert decision.decision == "accepted"
    assert decision.record["figures"]["current_version"] == "older"
    assert decision.record["figures"]["gate_negatives_flagged"] >= 0.9
    current = pointer(container)
    assert (current["version"], current["previous_version"]) == (bundled.version, "older")


def test_dropping_the_bundled_model_with_nothing_promoted_is_unchanged(
    container, registry, bundled
):
    publish(container, BUNDLED_MODEL.read_bytes(), bundled.version)
    decision = make_promoter(registry, bundled).handle(f"{bundled.version}.onnx")
    assert decision.decision == "unchanged"
    assert pointer(container) is None


def test_rollback_does_not_bring_back_a_version_serving_rolled_back(container, registry):
    store_and_point(registry, "v2", good("v2"))
    document = registry.read_pointer().document
    registry.replace_pointer(
        {
            **document,
            "previous_version": "v1",
            "rolled_back_from": {"version": "v1", "reason": "3 failures within 60 s"},
        },
        registry.read_pointer(),
    )
    with pytest.raises(PublishError, match="serving rolled v1 back"):
        rollback(container)


def test_a_current_model_that_cannot_answer_does_not_block_its_replacement():
    """Serving may be rolling the current version back, or it predates a rule: its failing runs
    hold the candidate to the floor alone, and the figures say why."""
    import numpy as np  # noqa: PLC0415

    from functions.model_contract import ModelOutputError  # noqa: PLC0415
    from functions.promotion.gate import check_quality  # noqa: PLC0415
    from functions.promotion.gate_set import GateSet  # noqa: PLC0415
    from functions.promotion.sandbox import GateAnswers  # noqa: PLC0415

    class Failing:
        version = "broken"

        def predict(self, images):
            raise ModelOutputError("the model answered a row that is not probabilities")

    labels = np.arange(10) % 10
    images = np.zeros((10, 28, 28, 1), np.float32)
    gate_set = GateSet(images=images, labels=labels, negatives=images[:2])
    answers = GateAnswers(  # the right digit, every time, and both negatives flagged
        np.eye(10, dtype=np.float32)[[*labels, 0, 0]], np.array([True] * 10 + [False] * 2)
    )
    figures = check_quality(answers, Failing(), gate_set, POLICY)
    assert figures["gate_accuracy"] == 1.0
    assert figures["current_version"] == "broken"
    assert "not probabilities" in figures["current_unusable"]
