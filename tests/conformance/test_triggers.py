"""The promoter and the reconciler run in the real worker, invoked as the host invokes them: the
blob trigger with the blob's bytes and trigger metadata (an Event Grid source gives the same
binding data as polling), the timer with its JSON status."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from azure.storage.blob import ContainerClient

from functions.serving.provider import BUNDLED_MODEL
from tests.helpers import onnx_bytes_with_version


@pytest.fixture(scope="module")
def models(azurite, conformance_storage) -> ContainerClient:
    return ContainerClient.from_connection_string(azurite, conformance_storage["MODELS_CONTAINER"])


def drop(models: ContainerClient, version: str) -> tuple[str, bytes]:
    """The bundled network under another version name, uploaded as the publisher uploads it."""
    content = onnx_bytes_with_version(BUNDLED_MODEL, version)
    name = f"incoming/{version}.onnx"
    models.upload_blob(name, content, metadata={"sha256": hashlib.sha256(content).hexdigest()})
    return name, content


def decisions(models: ContainerClient) -> dict[str, str]:
    """version -> decision, from the audit log."""
    blob = models.get_blob_client("audit/promotions.jsonl")
    if not blob.exists():
        return {}
    lines = blob.download_blob().readall().decode().splitlines()
    return {record["version"]: record["decision"] for record in map(json.loads, lines)}


def current_version(models: ContainerClient) -> str:
    return json.loads(models.download_blob("current.json").readall())["version"]


def typed(protos, value: object):
    """Trigger metadata as the host sends it: strings as strings, objects as JSON."""
    if isinstance(value, str):
        return protos.TypedData(string=value)
    return protos.TypedData(json=json.dumps(value))


def test_a_blob_event_runs_the_promoter_in_the_worker(worker, models):
    protos = worker.protos
    name, content = drop(models, "conformance-blob")
    blob = models.get_blob_client(name)
    properties = blob.get_blob_properties()
    path = f"{models.container_name}/{name}"
    trigger_metadata = {
        "BlobTrigger": path,
        "Uri": blob.url,
        "name": name.removeprefix("incoming/"),
        "Properties": {
            "ContentLength": len(content),
            "ContentType": properties.content_settings.content_type,
            "ETag": properties.etag,
            "BlobType": "BlockBlob",
            "LastModified": properties.last_modified.isoformat(),
        },
        "Metadata": properties.metadata,
        "sys": {
            "MethodName": "promote_model",
            "UtcNow": datetime.now(UTC).isoformat(),
            "RandGuid": "00000000-0000-0000-0000-000000000000",
        },
    }

    answer = worker.invoke(
        worker.functions["promote_model"].function_id,
        [protos.ParameterBinding(name="blob", data=protos.TypedData(bytes=content))],
        {key: typed(protos, value) for key, value in trigger_metadata.items()},
    )

    assert answer.result.status == protos.StatusResult.Success, answer.result
    assert decisions(models).get("conformance-blob") == "accepted", worker.log()
    assert current_version(models) == "conformance-blob"
    assert not blob.exists()


def test_the_timer_runs_the_reconciler_in_the_worker(worker, models):
    protos = worker.protos
    name, _ = drop(models, "conformance-timer")  # a drop that no event reached
    timer = {
        "Schedule": {"AdjustForDST": True},
        "ScheduleStatus": None,
        "IsPastDue": False,
    }

    answer = worker.invoke(
        worker.functions["reconcile_incoming"].function_id,
        [protos.ParameterBinding(name="timer", data=protos.TypedData(json=json.dumps(timer)))],
    )

    assert answer.result.status == protos.StatusResult.Success, answer.result
    assert decisions(models).get("conformance-timer") == "accepted", worker.log()
    assert current_version(models) == "conformance-timer"
    assert not models.get_blob_client(name).exists()
