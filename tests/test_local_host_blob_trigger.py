"""The local host's Event Grid blob trigger: the webhook, with real blobs in Azurite."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import azure.functions as func
import pytest
from aiohttp.test_utils import TestClient, TestServer

from local_host import build_web_app, startup_listing
from local_host.blob_trigger import blob_path, path_matches
from tests.helpers import blob_created
from tests.local_host_blob_app import app as blob_app
from tests.local_host_storage import BlobAppStorage

WEBHOOK = "/runtime/webhooks/blobs"
RECORD = {"functionName": "Host.Functions.record_blob"}
REJECT = {"functionName": "Host.Functions.reject_blob"}
NOTIFICATION = {"aeg-event-type": "Notification"}


def served(scenario: Callable[[TestClient], Awaitable[Any]]) -> Any:
    """Run ``scenario`` against the blob test app behind a real local socket."""

    async def run() -> Any:
        async with TestClient(TestServer(build_web_app(blob_app))) as client:
            return await scenario(client)

    return asyncio.run(run())


async def post_events(client: TestClient, query: dict[str, str], body: Any) -> tuple[int, str]:
    response = await client.post(WEBHOOK, params=query, json=body, headers=NOTIFICATION)
    return response.status, await response.text()


# --- the webhook -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{"aeg-event-type": "SubscriptionValidation"}, {}], ids=["header", "body only"]
)
def test_subscription_validation_handshake(
    blob_app_storage: BlobAppStorage, headers: dict[str, str]
) -> None:
    validation = {
        "id": "1",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "subject": "",
        "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
        "eventTime": "2026-01-01T00:00:00Z",
        "dataVersion": "2",
        "metadataVersion": "1",
    }

    async def scenario(client: TestClient) -> tuple[int, Any]:
        response = await client.post(
            WEBHOOK,
            params=RECORD,
            json=[validation],
            headers=headers,
        )
        return response.status, await response.json()

    assert served(scenario) == (
        200,
        {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
    )
    assert blob_app_storage.records() == []


def test_blob_created_invokes_the_function_with_the_real_blob(
    blob_app_storage: BlobAppStorage,
) -> None:
    etag = blob_app_storage.upload(
        "incoming/v2.onnx", b"\x08\x07onnx-bytes", metadata={"sha": "abc"}
    )

    async def scenario(client: TestClient) -> tuple[int, str]:
        return await post_events(
            client, RECORD, [blob_created(blob_app_storage.name, "incoming/v2.onnx")]
        )

    status, _ = served(scenario)
    assert status == 202
    [record] = blob_app_storage.records()
    assert record["name"] == f"{blob_app_storage.name}/incoming/v2.onnx"
    assert record["length"] == 12
    assert record["head"] == "\x08\x07onnx-bytes"
    assert record["uri"].endswith(f"/devstoreaccount1/{blob_app_storage.name}/incoming/v2.onnx")
    assert record["metadata"] == {"sha": "abc"}
    assert record["etag"] == etag


def test_events_for_other_paths_or_types_are_ignored(blob_app_storage: BlobAppStorage) -> None:
    blob_app_storage.upload("other/v2.onnx", b"other")
    blob_app_storage.upload("incoming/deleted.onnx", b"deleted")
    events = [
        blob_created(blob_app_storage.name, "other/v2.onnx"),
        blob_created("another-container", "incoming/v2.onnx"),
        blob_created(
            blob_app_storage.name,
            "incoming/deleted.onnx",
            eventType="Microsoft.Storage.BlobDeleted",
        ),
    ]

    async def scenario(client: TestClient) -> tuple[int, str]:
        return await post_events(client, RECORD, events)

    assert served(scenario)[0] == 202
    assert blob_app_storage.records() == []


def test_an_event_for_a_blob_that_is_gone_is_skipped(
    blob_app_storage: BlobAppStorage, caplog: pytest.LogCaptureFixture
) -> None:
    blob_app_storage.upload("incoming/here.bin", b"here")
    events = [
        blob_created(blob_app_storage.name, "incoming/gone.bin"),
        blob_created(blob_app_storage.name, "incoming/here.bin"),
    ]

    async def scenario(client: TestClient) -> tuple[int, str]:
        return await post_events(client, RECORD, events)

    with caplog.at_level(logging.WARNING, logger="local_host"):
        status, _ = served(scenario)
    assert status == 202
    assert [r["head"] for r in blob_app_storage.records()] == ["here"]
    assert f"{blob_app_storage.name}/incoming/gone.bin no longer exists" in caplog.text


def test_a_failing_function_is_500_so_event_grid_retries(
    blob_app_storage: BlobAppStorage, caplog: pytest.LogCaptureFixture
) -> None:
    blob_app_storage.upload("failing/bad.onnx", b"bad")

    async def scenario(client: TestClient) -> tuple[int, str]:
        return await post_events(
            client, REJECT, [blob_created(blob_app_storage.name, "failing/bad.onnx")]
        )

    with caplog.at_level(logging.ERROR, logger="local_host"):
        status, body = served(scenario)
    assert status == 500
    assert json.loads(body)["detail"] == "Function 'reject_blob' failed; see the local host's log."
    assert "cannot take" not in body
    failures = [r for r in caplog.records if r.exc_info]
    assert "cannot take" in str(failures[0].exc_info[1])


@pytest.mark.parametrize(
    "query",
    [{"functionName": "Host.Functions.nope"}, {"functionName": "record_blob"}, {}],
)
def test_an_unknown_function_name_is_404_problem(query: dict[str, str]) -> None:
    async def scenario(client: TestClient) -> tuple[int, str, str]:
        response = await client.post(WEBHOOK, params=query, json=[], headers=NOTIFICATION)
        return response.status, response.headers["Content-Type"], await response.text()

    status, content_type, body = served_without_storage(scenario)
    assert status == 404
    assert content_type == "application/problem+json"
    assert "use functionName=Host.Functions.<function name>" in json.loads(body)["detail"]


@pytest.mark.parametrize(
    "body", [b"not json", b"[1, 2]", b'{"eventType": "one event, not a batch"}']
)
def test_a_body_that_is_not_events_is_400(body: bytes) -> None:
    async def scenario(client: TestClient) -> int:
        headers = {**NOTIFICATION, "Content-Type": "application/json"}
        response = await client.post(WEBHOOK, params=RECORD, data=body, headers=headers)
        return response.status

    assert served_without_storage(scenario) == 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_events_in_a_body_that_is_not_json_typed_are_refused_with_415(
    content_type: str | None,
) -> None:
    # A web page can send these cross-site without a preflight; Event Grid always sends JSON.
    event = {"eventType": "Microsoft.Storage.BlobCreated", "subject": "x", "data": {}}

    async def scenario(client: TestClient) -> tuple[int, str]:
        headers = {**NOTIFICATION, **({"Content-Type": content_type} if content_type else {})}
        response = await client.post(
            WEBHOOK, params=RECORD, data=json.dumps([event]).encode(), headers=headers
        )
        return response.status, response.headers["Content-Type"]

    assert served_without_storage(scenario) == (415, "application/problem+json")


def served_without_storage(scenario: Callable[[TestClient], Awaitable[Any]]) -> Any:
    """For requests refused before storage is touched: the settings only need to exist."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TEST_STORAGE", "UseDevelopmentStorage=true")
        patch.setenv("TEST_CONTAINER", "unused")
        return served(scenario)


# --- startup -------------------------------------------------------------------------------


def test_listing_names_the_webhook_of_each_event_grid_trigger(
    blob_app_storage: BlobAppStorage,
) -> None:
    listing = startup_listing(build_web_app(blob_app), "http://localhost:7071").splitlines()
    assert (
        "    record_blob: blobTrigger (EventGrid) POST http://localhost:7071"
        "/runtime/webhooks/blobs?functionName=Host.Functions.record_blob"
    ) in listing


def test_unresolved_settings_are_refused_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_STORAGE", "UseDevelopmentStorage=true")
    monkeypatch.delenv("TEST_CONTAINER", raising=False)
    with pytest.raises(ValueError, match="record_blob: %TEST_CONTAINER% does not resolve"):
        build_web_app(blob_app)
    monkeypatch.setenv("TEST_CONTAINER", "models")
    monkeypatch.delenv("TEST_STORAGE")
    with pytest.raises(ValueError, match="record_blob: TEST_STORAGE is not set"):
        build_web_app(blob_app)
    monkeypatch.setenv("TEST_STORAGE__blobServiceUri", "https://account.blob.core.windows.net")
    with pytest.raises(ValueError, match="record_blob: the local host connects with a connection"):
        build_web_app(blob_app)


def test_blob_triggers_that_poll_are_listed_as_not_served() -> None:
    polling = func.FunctionApp()

    @polling.blob_trigger(arg_name="blob", path="models/{name}", connection="MODELS_STORAGE")
    def on_blob(blob: func.InputStream) -> None:
        raise AssertionError("never called")

    listing = startup_listing(build_web_app(polling), "http://localhost:7071")
    assert (
        "    on_blob: blobTrigger (LogsAndContainerScan) is not served locally; "
        "only source=func.BlobSource.EVENT_GRID is"
    ) in listing.splitlines()


# --- paths and events ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "path", "matches"),
    [
        ("models/incoming/{name}", "models/incoming/v2.onnx", True),
        ("models/incoming/{name}", "models/incoming/sub/v2.onnx", True),
        ("models/incoming/{name}", "models/incoming/", False),
        ("models/incoming/{name}", "models/versions/v2.onnx", False),
        ("models/incoming/{name}", "other/incoming/v2.onnx", False),
        ("models/{name}.onnx", "models/v2.onnx", True),
        ("models/{name}.onnx", "models/v2.json", False),
        ("models/a+b/{name}", "models/a+b/x", True),
        ("models/a+b/{name}", "models/aab/x", False),
    ],
)
def test_blob_path_patterns(template: str, path: str, matches: bool) -> None:
    assert path_matches(template, path) is matches


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {"subject": "/blobServices/default/containers/models/blobs/incoming/a b.onnx"},
            "models/incoming/a b.onnx",
        ),
        ({"subject": "/something/else", "data": {}}, None),
        ({"data": {"url": "https://acct.blob.core.windows.net/models/incoming/v2.onnx"}}, None),
    ],
)
def test_the_blob_comes_from_the_subject(event: dict[str, Any], expected: str | None) -> None:
    assert blob_path(event) == expected
