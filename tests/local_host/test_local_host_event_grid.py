"""The local host's Event Grid webhook, serving the Event Grid triggers of tests/apps/event_grid_app
on azure-functions-runtime."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from local_host.server import WORKER_KEY, host_app, startup_listing
from tests.helpers import blob_created
from tests.stack import REPO_ROOT

APP = REPO_ROOT / "tests" / "apps" / "event_grid_app"
WEBHOOK = "/runtime/webhooks/eventgrid"
RECORD = {"functionName": "record_event"}
REJECT = {"functionName": "reject_event"}
NOTIFICATION = {"aeg-event-type": "Notification"}
VALIDATION_CODE = "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
VALIDATION_EVENT = {
    "id": "1",
    "topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage"
    "/storageAccounts/devstoreaccount1",
    "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
    "subject": "",
    "data": {"validationCode": VALIDATION_CODE},
    "eventTime": "2026-01-01T00:00:00Z",
    "dataVersion": "2",
    "metadataVersion": "1",
}


@pytest.fixture
def record_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Where the test app records its calls (no storage: an Event Grid trigger reads none)."""
    path = tmp_path / "record.jsonl"
    monkeypatch.setenv("TEST_RECORD_FILE", str(path))
    return path


def records(record_file: Path) -> list[dict[str, Any]]:
    if not record_file.exists():
        return []
    return [json.loads(line) for line in record_file.read_text().splitlines()]


def served(scenario: Callable[[TestClient], Awaitable[Any]]) -> Any:
    """Run ``scenario`` against the Event Grid test app behind a real local socket."""

    async def run() -> Any:
        web_app = await host_app(APP)
        try:
            async with TestClient(TestServer(web_app)) as client:
                return await scenario(client)
        finally:
            web_app[WORKER_KEY].stop()

    return asyncio.run(run())


async def post_events(
    client: TestClient, query: dict[str, str], body: Any, headers: dict[str, str] = NOTIFICATION
) -> tuple[int, str]:
    response = await client.post(WEBHOOK, params=query, json=body, headers=headers)
    return response.status, await response.text()


# --- the handshake ---------------------------------------------------------------------------


def test_subscription_validation_handshake(record_file: Path) -> None:
    async def scenario(client: TestClient) -> tuple[int, Any]:
        headers = {"aeg-event-type": "SubscriptionValidation"}
        response = await client.post(
            WEBHOOK, params=RECORD, json=[VALIDATION_EVENT], headers=headers
        )
        return response.status, await response.json()

    assert served(scenario) == (200, {"validationResponse": VALIDATION_CODE})
    assert records(record_file) == []  # the function is not called for the handshake


def test_a_delivery_without_the_event_grid_header_is_400_and_calls_nothing(
    record_file: Path,
) -> None:
    # As in the host: what a delivery is comes from aeg-event-type, never from the body.
    async def scenario(client: TestClient) -> list[int]:
        return [
            (await post_events(client, RECORD, [VALIDATION_EVENT], headers={}))[0],
            (await post_events(client, RECORD, [blob_created("models", "incoming/a.onnx")], {}))[0],
            (await post_events(client, RECORD, [], {"aeg-event-type": "Something"}))[0],
        ]

    assert served(scenario) == [400, 400, 400]
    assert records(record_file) == []


def test_an_unsubscribe_delivery_is_accepted_and_calls_nothing(record_file: Path) -> None:
    async def scenario(client: TestClient) -> int:
        return (await post_events(client, RECORD, [], {"aeg-event-type": "Unsubscribe"}))[0]

    assert served(scenario) == 202
    assert records(record_file) == []


# --- notifications ---------------------------------------------------------------------------


def test_blob_created_invokes_the_function_with_the_event(record_file: Path) -> None:
    event = blob_created("models", "incoming/v2.onnx")

    async def scenario(client: TestClient) -> tuple[int, str]:
        return await post_events(client, RECORD, [event])

    status, _ = served(scenario)
    assert status == 202
    [record] = records(record_file)
    assert record["is_event"] is True  # a func.EventGridEvent, as the runtime builds it
    assert record["subject"] == "/blobServices/default/containers/models/blobs/incoming/v2.onnx"
    assert record["event_type"] == "Microsoft.Storage.BlobCreated"
    assert (record["id"], record["topic"]) == (event["id"], event["topic"])
    assert record["event_time"] == "2026-01-01T00:00:00+00:00"
    assert record["data"] == event["data"]  # the event's JSON, url and eTag included
    assert (
        record["data"]["url"] == "http://127.0.0.1:10000/devstoreaccount1/models/incoming/v2.onnx"
    )


def test_each_event_of_a_delivery_is_one_invocation(record_file: Path) -> None:
    # The host filters nothing: what to do with another type or path is the function's business.
    events = [
        blob_created("models", "incoming/a.onnx"),
        blob_created("other", "elsewhere/b.bin"),
        blob_created("models", "incoming/c.onnx", eventType="Microsoft.Storage.BlobDeleted"),
    ]

    async def scenario(client: TestClient) -> tuple[int, str]:
        return await post_events(client, RECORD, events)

    assert served(scenario)[0] == 202
    assert [(r["subject"], r["event_type"]) for r in records(record_file)] == [
        (e["subject"], e["eventType"]) for e in events
    ]


def test_a_failing_function_is_500_so_event_grid_retries(
    record_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(client: TestClient) -> tuple[int, str, str]:
        response = await client.post(
            WEBHOOK,
            params=REJECT,
            json=[blob_created("models", "incoming/bad.onnx")],
            headers=NOTIFICATION,
        )
        return response.status, response.headers["Content-Type"], await response.text()

    with caplog.at_level(logging.ERROR, logger="local_host"):
        status, content_type, body = served(scenario)
    assert (status, content_type) == (500, "application/problem+json")
    assert json.loads(body)["detail"] == "Function 'reject_event' failed; see the local host's log."
    assert "cannot take" not in body  # the function's error stays in the log
    assert "Executed 'Functions.reject_event' (Failed" in caplog.text
    assert "cannot take /blobServices/default/containers/models/blobs/incoming/bad.onnx" in (
        caplog.text
    )


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {"functionName": "nope"},
        {"functionName": "Host.Functions.record_event"},  # the blob trigger's webhook named it so
        {"functionName": ""},
        {},
    ],
)
def test_an_unknown_function_name_is_404_problem(query: dict[str, str]) -> None:
    async def scenario(client: TestClient) -> tuple[int, str, str]:
        response = await client.post(WEBHOOK, params=query, json=[], headers=NOTIFICATION)
        return response.status, response.headers["Content-Type"], await response.text()

    status, content_type, body = served(scenario)
    assert status == 404
    assert content_type == "application/problem+json"
    assert json.loads(body)["detail"] == "No Event Grid trigger of that name is served here."


@pytest.mark.parametrize(
    "body", [b"not json", b"[1, 2]", b'{"eventType": "one event, not a batch"}', b""]
)
def test_a_body_that_is_not_events_is_400(record_file: Path, body: bytes) -> None:
    async def scenario(client: TestClient) -> tuple[int, str]:
        headers = {**NOTIFICATION, "Content-Type": "application/json"}
        response = await client.post(WEBHOOK, params=RECORD, data=body, headers=headers)
        return response.status, response.headers["Content-Type"]

    assert served(scenario) == (400, "application/problem+json")
    assert records(record_file) == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_events_in_a_body_that_is_not_json_typed_are_refused_with_415(
    record_file: Path, content_type: str | None
) -> None:
    # A web page can send these cross-site without a preflight; Event Grid always sends JSON.
    event = blob_created("models", "incoming/v2.onnx")

    async def scenario(client: TestClient) -> tuple[int, str]:
        headers = {**NOTIFICATION, **({"Content-Type": content_type} if content_type else {})}
        response = await client.post(
            WEBHOOK, params=RECORD, data=json.dumps([event]).encode(), headers=headers
        )
        return response.status, response.headers["Content-Type"]

    assert served(scenario) == (415, "application/problem+json")
    assert records(record_file) == []


# --- startup ---------------------------------------------------------------------------------


def test_listing_names_the_webhook_of_each_event_grid_trigger() -> None:
    async def listing() -> list[str]:
        web_app = await host_app(APP)
        web_app[WORKER_KEY].stop()
        return startup_listing(web_app, "http://localhost:7071").splitlines()

    lines = asyncio.run(listing())
    for name in ("record_event", "reject_event"):
        assert (
            f"    {name}: eventGridTrigger http://localhost:7071"
            f"/runtime/webhooks/eventgrid?functionName={name}"
        ) in lines
