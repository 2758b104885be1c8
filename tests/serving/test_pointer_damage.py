"""A damaged current.json (not JSON, not an object, a field missing or malformed) stops nothing:
serving treats it as absent (the last good version, or the bundled model, keeps serving) and says
so loudly, /api/models shows it beside decisions that keep coming, and the next promotion
replaces it. Before, each read raised: every promotion broke off, and the event's retries used
up the attempts meant for crashes, so a good model was recorded `undecided` within 4 s."""

from __future__ import annotations

import json
from types import SimpleNamespace

import azure.functions as func
import pytest

from conversion import publish as publisher
from functions.api import handlers as api
from functions.composition import Services
from functions.promotion import handlers
from functions.promotion.promoter import MAX_DECISION_ATTEMPTS
from functions.serving.provider import BundledModel, ModelProvider
from tests.helpers import call, http_request
from tests.promotion.test_promotion import audit, good, make_promoter, pointer

DAMAGED = {
    "not JSON": b"{not json",
    "empty": b"",
    "not UTF-8": b"\xff\xfe{}",
    "not an object": b'["v1"]',
    "no sha256": b'{"version": "v1"}',
    "a crafted version": b'{"version": "../x", "sha256": "' + b"0" * 64 + b'"}',
}


@pytest.mark.parametrize("damaged", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_promotion_replaces_a_damaged_pointer(container, registry, bundled, damaged):
    container.upload_blob("current.json", damaged, overwrite=True)
    publisher.publish(container, good("v2"), "v2")

    decision = make_promoter(registry, bundled).handle("v2.onnx")

    assert decision.decision == "accepted"
    current = pointer(container)
    assert current["version"] == "v2"
    assert current["previous_version"] == bundled.version  # a damaged pointer counts as none
    assert current["gate"]["agreement_with_current"] == 1.0  # judged against the bundled model
    (line,) = audit(container)
    assert line["replaced_damaged_pointer"].startswith("current.json ")


def test_event_deliveries_decide_a_good_model_despite_a_damaged_pointer(
    container, registry, bundled
):
    """Through the Event Grid trigger's function, as the local stack's relay delivers (four
    tries within 4 s): the first delivery decides."""
    container.upload_blob("current.json", b"{not json", overwrite=True)
    publisher.publish(container, good("v2"), "v2")
    services = Services(
        read_settings=lambda: SimpleNamespace(container=container.container_name),
        promoter=make_promoter(registry, bundled),
    )
    subject = f"/blobServices/default/containers/{container.container_name}/blobs/incoming/v2.onnx"
    event = func.EventGridEvent(
        id="1",
        data={},
        topic="",
        subject=subject,
        event_type=handlers.BLOB_CREATED,
        event_time=None,
        data_version="",
    )
    for _ in range(MAX_DECISION_ATTEMPTS + 1):  # a retry after the decision changes nothing
        handlers.promote_model(event, services)

    assert [(line["decision"], line["version"]) for line in audit(container)] == [
        ("accepted", "v2")
    ]
    assert pointer(container)["version"] == "v2"


def test_models_shows_the_damage_beside_decisions_that_keep_coming(container, registry, bundled):
    promoter = make_promoter(registry, bundled)
    publisher.publish(container, good("v2"), "v2")
    promoter.handle("v2.onnx")
    container.upload_blob("current.json", b'{"version": "v2"}', overwrite=True)  # sha256 gone
    provider = ModelProvider(BundledModel(), storage=lambda: (registry, 60.0))
    services = Services(provider=provider)
    try:
        answer = json.loads(call(api.models, http_request("GET", "models"), services).get_body())
        health = json.loads(call(api.health, http_request("GET", "health"), services).get_body())
    finally:
        provider.stop()

    assert answer["current"]["version"] == bundled.version  # a cold instance: as if absent
    assert answer["pointer"] is None
    assert answer["pointer_error"] == "current.json has no valid sha256: None"
    assert answer["listing"]["last_error"] is None
    assert [d["version"] for d in answer["decisions"]] == ["v2"]
    assert health["status"] == "ok"
    assert health["storage"]["pointer_error"] == "current.json has no valid sha256: None"


def test_a_rollback_from_a_damaged_pointer_says_what_to_do(container):
    container.upload_blob("current.json", b"{not json", overwrite=True)
    with pytest.raises(publisher.PublishError, match="publish the version to serve"):
        publisher.rollback(container)
