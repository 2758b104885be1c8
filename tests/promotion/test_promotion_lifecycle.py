"""Every drop is decided once, in bounded time, and no name reaches outside the drop zone:
claims kept alive while a decision runs, attempts counted across crashes, crafted names refused
before any storage call, and the publisher's own checks. Against a real Azurite container."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import threading
import time
from types import SimpleNamespace

import azure.functions as func
import pytest
from azure.storage.blob import BlobLeaseClient

from conversion import publish as publisher
from functions.composition import Services
from functions.promotion import handlers
from functions.promotion import promoter as promoter_module
from functions.promotion.gate import MAX_MODEL_BYTES
from functions.promotion.promoter import MAX_DECISION_ATTEMPTS
from functions.storage import claims
from functions.storage.model_registry import ModelRegistry
from functions.storage.names import Candidate
from functions.storage.registry import AUDIT
from tests.bad_models import good_model_bytes, never_ending_model_bytes
from tests.helpers import read_lines, wait_for_line
from tests.promotion.test_promotion import (
    audit,
    drop,
    incoming,
    make_promoter,
    pointer,
    store_and_point,
)
from tests.stack import REPO_ROOT

V2 = Candidate("v2")


def publisher_arguments(model, azurite: str, container) -> list[str]:
    """`python -m conversion.publish`'s arguments for a model file and an Azurite container."""
    return [str(model), "--connection-string", azurite, "--container", container.container_name]


def blob_state(container) -> dict[str, tuple[str, str]]:
    """Every blob's ETag and lease state, to show what a step did not touch."""
    return {
        blob.name: (blob.etag, blob.lease.state)
        for blob in container.list_blobs(include=["metadata"])
    }


def served_v1(registry) -> None:
    store_and_point(registry, "v1", good_model_bytes("v1"))


# --- the claim is kept while the decision runs, within a hard limit -----------------------------


def test_a_slow_decision_keeps_its_claim_past_the_lease(container, registry, bundled, monkeypatch):
    monkeypatch.setattr(claims, "CLAIM_SECONDS", 15)  # the shortest lease storage gives
    drop(container, "v2", good_model_bytes("v2"))
    real_read_pointer = registry.read_pointer
    probe = {}

    def a_slow_step_mid_decision():
        time.sleep(18)  # past the 15 s lease; the keeper renews it every 5 s
        return real_read_pointer()

    def another_instance_tries_at_16_s():
        time.sleep(16)
        probe["claim"] = ModelRegistry(container).claim_incoming(V2, MAX_MODEL_BYTES)

    registry.read_pointer = a_slow_step_mid_decision
    other = threading.Thread(target=another_instance_tries_at_16_s)
    other.start()
    decision = make_promoter(registry, bundled).handle("v2.onnx")
    other.join()

    assert probe["claim"] is None  # still leased: not decided twice
    assert decision.decision == "accepted"
    assert incoming(container) == []
    assert [line["decision"] for line in audit(container)] == ["accepted"]


# --- attempts are counted durably; the Nth broken-off decision is the last ----------------------

CHILD = """
import sys, time
from azure.storage.blob import ContainerClient
from functions.promotion.gate import GatePolicy
from functions.promotion.gate_set import load_gate_set
from functions.promotion.promoter import Promoter
from functions.storage.model_registry import ModelRegistry

registry = ModelRegistry(ContainerClient.from_connection_string(sys.argv[1], sys.argv[2]))
def hang_after_the_claim():
    print("claimed", flush=True)
    while True:
        time.sleep(60)  # as a never-ending model or a hung storage call would
registry.read_pointer = hang_after_the_claim
policy = GatePolicy(min_accuracy=0.98, max_regression=0.005, signing_key=None)
Promoter(registry, policy, load_gate_set(), None).handle(sys.argv[3])
"""


def decide_in_a_process_that_dies(azurite: str, container, name: str) -> None:
    """Starts a decision in another process, kills it once the file is claimed, and lets the
    lease go as its expiry would (breaking it saves the 60 s wait)."""
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD), azurite, container.container_name, name],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_line(read_lines(child), r"^claimed$", timeout=120)
    finally:
        child.kill()
        child.wait(timeout=30)
    BlobLeaseClient(container.get_blob_client(f"incoming/{name}")).break_lease(lease_break_period=0)


def test_a_decision_killed_every_time_is_rejected_and_never_run_again(
    azurite, container, registry, bundled
):
    served_v1(registry)
    before = blob_state(container)
    drop(container, "hang", never_ending_model_bytes("hang"))
    for attempt in range(1, MAX_DECISION_ATTEMPTS + 1):
        decide_in_a_process_that_dies(azurite, container, "hang.onnx")
        metadata = container.get_blob_client("incoming/hang.onnx").get_blob_properties().metadata
        assert metadata["attempts"] == str(attempt)  # counted although nothing finished

    def the_gate_must_not_run_again():
        raise AssertionError("a file past its attempts was judged again")

    registry.read_pointer = the_gate_must_not_run_again
    decision = make_promoter(registry, bundled).handle("hang.onnx")

    assert (decision.decision, decision.record["check"]) == ("rejected", "undecided")
    assert str(MAX_DECISION_ATTEMPTS) in decision.record["reason"]
    assert decision.record["sha256"] == hashlib.sha256(never_ending_model_bytes("hang")).hexdigest()
    rejection = json.loads(container.download_blob("rejected/hang.json").readall())
    assert rejection["check"] == "undecided"
    assert rejection["earlier_errors"]
    assert incoming(container) == []
    assert [line["check"] for line in audit(container)] == ["undecided"]
    after = blob_state(container)
    assert {name: after[name] for name in before} == before  # current.json, versions/ untouched
    assert make_promoter(registry, bundled).reconcile() == []  # nothing comes back


def test_failed_attempts_are_noted_and_the_reconciler_goes_on_past_them(
    container, registry, bundled, monkeypatch
):
    publisher.publish(container, good_model_bytes("stuck"), "stuck")  # with its sha256
    drop(container, "v2", good_model_bytes("v2"))
    real_stored_version = registry.stored_version

    def storage_fails_for_stuck(version):
        if version == "stuck":
            raise ConnectionError(f"storage hiccup deciding {version}")
        return real_stored_version(version)

    registry.stored_version = storage_fails_for_stuck
    promoter = make_promoter(registry, bundled)
    rounds = [promoter.reconcile() for _ in range(MAX_DECISION_ATTEMPTS + 1)]

    # Errors the promoter caught are not crashes: they do not use up the attempts meant for
    # those, and the file is judged again at each round.
    assert [(d.version, d.decision) for d in rounds[0]] == [("v2", "accepted")]
    assert rounds[1:] == [[]] * MAX_DECISION_ATTEMPTS
    assert incoming(container) == ["incoming/stuck.onnx"]
    metadata = container.get_blob_client("incoming/stuck.onnx").get_blob_properties().metadata
    assert metadata["attempts"] == metadata["failed_attempts"] == str(MAX_DECISION_ATTEMPTS + 1)
    assert metadata["first_failed_at"].endswith("Z")
    assert (
        metadata["sha256"] == hashlib.sha256(good_model_bytes("stuck")).hexdigest()
    )  # as published

    # They are given up only once MAX_FAILED_ATTEMPTS failed over FAILED_ATTEMPTS_SECONDS.
    monkeypatch.setattr(promoter_module, "MAX_FAILED_ATTEMPTS", MAX_DECISION_ATTEMPTS + 1)
    assert promoter.reconcile() == []  # enough attempts, but not for long enough
    monkeypatch.setattr(promoter_module, "FAILED_ATTEMPTS_SECONDS", 0)
    (decision,) = promoter.reconcile()
    assert (decision.version, decision.record["check"]) == ("stuck", "undecided")
    assert "failed with errors" in decision.record["reason"]
    errors = decision.record["earlier_errors"]
    assert len(errors) == 5  # the newest five are kept
    assert all("storage hiccup deciding stuck" in error for error in errors)
    assert incoming(container) == []
    assert pointer(container)["version"] == "v2"


def test_event_retries_after_errors_do_not_make_a_good_model_undecided(
    container, registry, bundled
):
    """As Event Grid delivers: the event's function fails (a storage error mid-decision), and
    is retried within seconds, more times than the attempts meant for crashes."""
    publisher.publish(container, good_model_bytes("v2"), "v2")
    real_read_pointer = registry.read_pointer
    failures = MAX_DECISION_ATTEMPTS + 2

    def storage_fails_at_first():
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("storage hiccup")
        return real_read_pointer()

    registry.read_pointer = storage_fails_at_first
    promoter = make_promoter(registry, bundled)
    for _ in range(MAX_DECISION_ATTEMPTS + 2):
        with pytest.raises(ConnectionError):
            promoter.handle("v2.onnx")
    decision = promoter.handle("v2.onnx")
    assert decision.decision == "accepted"
    assert pointer(container)["version"] == "v2"


def test_a_new_upload_of_the_file_starts_counting_again(container, registry, bundled):
    drop(container, "v2", good_model_bytes("v2"))
    for _ in range(2):
        dropped = registry.claim_incoming(V2, MAX_MODEL_BYTES)
        registry.release_incoming(dropped, "broke off")
    drop(container, "v2", good_model_bytes("v2"))  # published again: a new file
    dropped = registry.claim_incoming(V2, MAX_MODEL_BYTES)
    assert (dropped.attempt, dropped.earlier_errors) == (1, ())
    assert "attempts" not in dropped.metadata  # the gate sees the metadata as uploaded
    registry.release_incoming(dropped)


def test_a_reconciler_run_is_bounded_in_time(container, registry, bundled):
    for version in ("a", "b", "c"):
        drop(container, version, b"not a model")
    real_claim = registry.claim_incoming

    def slow_claim(candidate, max_bytes):
        time.sleep(1.0)
        return real_claim(candidate, max_bytes)

    registry.claim_incoming = slow_claim
    decisions = make_promoter(registry, bundled).reconcile(limit_seconds=0.5)
    assert [(d.version, d.decision) for d in decisions] == [("a", "rejected")]
    assert incoming(container) == ["incoming/b.onnx", "incoming/c.onnx"]  # for the next round


# --- crafted names never reach a storage call ---------------------------------------------------

CRAFTED_NAMES = [
    "../current.json",
    "a/../../current.json",
    "..%2Fcurrent.json",
    "%2e%2e/current.json",
    "x/../v.onnx",
    "../versions/v1.onnx",
    "../current.onnx",
    "..\\current.json",
    "v1\\..\\..\\current.onnx",
    "v1\x00.onnx",
    "v1.onnx\n",
    "a" * 65 + ".onnx",
    "/v1.onnx",
    "sub/v1.onnx",
    ".onnx",
    "",
]


class StorageSpy:
    """Records the blob names that the registry's container client is asked about."""

    def __init__(self, container, monkeypatch) -> None:
        self.names: list[str] = []
        for method in ("get_blob_client", "download_blob", "upload_blob", "delete_blob"):
            real = getattr(container, method)
            monkeypatch.setattr(container, method, self._recording(real))

    def _recording(self, real):
        def call(blob, *args, **kwargs):
            self.names.append(blob)
            return real(blob, *args, **kwargs)

        return call


@pytest.mark.parametrize("name", CRAFTED_NAMES, ids=[repr(name)[:40] for name in CRAFTED_NAMES])
def test_a_crafted_name_is_refused_before_any_storage_call(
    container, registry, bundled, monkeypatch, name
):
    served_v1(registry)
    container.upload_blob("incoming/v.onnx", good_model_bytes("v"))
    container.upload_blob("v.onnx", b"outside the drop zone")
    before = blob_state(container)
    spy = StorageSpy(container, monkeypatch)

    decision = make_promoter(registry, bundled).handle(name)

    assert (decision.decision, decision.record["check"]) == ("rejected", "name")
    record_name = "invalid-name-" + hashlib.sha256(name.encode()).hexdigest()[:12]
    assert set(spy.names) <= {AUDIT, f"rejected/{record_name}.json"}
    after = blob_state(container)
    assert {blob: after[blob] for blob in before} == before  # nothing leased, changed or deleted
    assert set(after) - set(before) == {AUDIT, f"rejected/{record_name}.json"}


def test_the_reconciler_refuses_listed_invalid_names_once_and_leaves_them(
    container, registry, bundled
):
    container.upload_blob("incoming/sub/v2.onnx", good_model_bytes("v2"))
    container.upload_blob("incoming/notes.txt", b"hello")
    drop(container, "v3", good_model_bytes("v3"))
    promoter = make_promoter(registry, bundled)

    first = promoter.reconcile()
    assert sorted((d.version, d.record.get("check")) for d in first) == [
        ("notes.txt", "name"),
        ("sub/v2", "name"),
        ("v3", None),
    ]
    assert promoter.reconcile() == []  # refused once, not every round
    assert incoming(container) == ["incoming/notes.txt", "incoming/sub/v2.onnx"]
    assert pointer(container)["version"] == "v3"


def test_the_event_trigger_only_takes_names_from_its_own_drop_zone():
    def name(path: str) -> str | None:
        return handlers.incoming_name(f"/blobServices/default/containers/{path}", "models")

    assert name("models/blobs/incoming/v2.onnx") == "v2.onnx"
    assert name("models/blobs/incoming/../current.json") == (
        "../current.json"  # passed on: the promoter refuses and records it
    )
    assert name("models/blobs/incoming/") is None
    assert name("other/blobs/incoming/v2.onnx") is None
    assert name("models/blobs/versions/v2.onnx") is None
    assert name("models/blobs/x/incoming/v2.onnx") is None
    assert handlers.incoming_name("models/incoming/v2.onnx", "models") is None


def blob_event(subject: str, event_type: str = handlers.BLOB_CREATED) -> func.EventGridEvent:
    return func.EventGridEvent(
        id="1",
        data={},
        topic="",
        subject=subject,
        event_type=event_type,
        event_time=None,
        data_version="",
    )


def test_a_crafted_blob_event_is_recorded_and_touches_nothing(container, registry, bundled):
    served_v1(registry)
    before = blob_state(container)
    services = Services(
        read_settings=lambda: SimpleNamespace(container=container.container_name),
        promoter=make_promoter(registry, bundled),
    )
    for path in ("incoming/../current.json", "versions/v1.onnx", "incoming/a/../../current.json"):
        subject = f"/blobServices/default/containers/{container.container_name}/blobs/{path}"
        handlers.promote_model(blob_event(subject), services)
    deleted = f"/blobServices/default/containers/{container.container_name}/blobs/incoming/v9.onnx"
    handlers.promote_model(blob_event(deleted, "Microsoft.Storage.BlobDeleted"), services)

    assert [line["check"] for line in audit(container)] == ["name", "name"]  # not versions/
    after = blob_state(container)
    assert {blob: after[blob] for blob in before} == before


# --- the publisher ------------------------------------------------------------------------------


def test_the_publisher_refuses_a_crafted_version_in_the_models_metadata(
    azurite, container, registry, tmp_path, capsys
):
    served_v1(registry)
    before = blob_state(container)
    model = tmp_path / "model.onnx"
    model.write_bytes(good_model_bytes("../versions/v1"))

    status = publisher.main(publisher_arguments(model, azurite, container))

    assert status == 1
    assert "'../versions/v1' is not valid" in capsys.readouterr().err
    assert blob_state(container) == before
    with pytest.raises(publisher.PublishError, match="not valid"):
        publisher.publish(container, good_model_bytes("v2"), "../versions/v1")
    assert blob_state(container) == before


def test_a_rollback_refuses_a_crafted_previous_version(container, registry):
    pointer = {"version": "v1", "sha256": "0" * 64, "previous_version": "../current"}
    registry.replace_pointer(pointer, None)
    before = blob_state(container)
    with pytest.raises(publisher.PublishError, match="not valid"):
        publisher.rollback(container)
    assert blob_state(container) == before


def test_publishing_a_version_while_it_is_decided_says_so(
    azurite, container, registry, tmp_path, capsys
):
    first = good_model_bytes("v2")
    publisher.publish(container, first, "v2")
    claim = registry.claim_incoming(V2, MAX_MODEL_BYTES)  # the promoter is deciding
    model = tmp_path / "v2.onnx"
    model.write_bytes(first)  # published again meanwhile
    arguments = publisher_arguments(model, azurite, container)

    assert publisher.main(arguments) == 1
    error = capsys.readouterr().err
    assert "incoming/v2.onnx is being decided right now" in error
    assert "try again" in error
    assert container.download_blob("incoming/v2.onnx").readall() == first

    registry.release_incoming(claim)
    assert publisher.main(arguments) == 0  # once decided (here: let go), it goes through


# --- found in review ------------------------------------------------------------------------


def test_a_failure_after_the_pointer_moved_keeps_the_decision_accepted(
    container, registry, bundled, monkeypatch
):
    from azure.core.exceptions import ServiceRequestError  # noqa: PLC0415

    def storage_away(version):
        raise ServiceRequestError("storage went away after the pointer moved")

    monkeypatch.setattr(registry, "mark_promoted", storage_away)
    monkeypatch.setattr("functions.storage.model_registry.time.sleep", lambda seconds: None)
    name = drop(container, "v2", good_model_bytes("v2"))

    decision = make_promoter(registry, bundled).handle(name)

    assert decision.decision == "accepted"
    assert pointer(container)["version"] == "v2"
    assert [line["decision"] for line in audit(container)] == ["accepted"]
    assert audit(container)[0]["previous_version"] == bundled.version
    assert incoming(container) == []  # decided, not left for another attempt


def test_the_publisher_refuses_a_version_flag_that_differs_from_the_models_own(
    azurite, container, tmp_path, capsys
):
    model = tmp_path / "model.onnx"
    model.write_bytes(good_model_bytes("v2"))
    before = blob_state(container)
    arguments = publisher_arguments(model, azurite, container)

    assert publisher.main([*arguments, "--version", "v3"]) == 1
    assert "--version v3 differs from the version in the model's metadata (v2)" in (
        capsys.readouterr().err
    )
    assert blob_state(container) == before
    assert publisher.main([*arguments, "--version", "v2"]) == 0
    assert incoming(container) == ["incoming/v2.onnx"]
