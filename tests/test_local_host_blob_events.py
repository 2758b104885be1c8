"""The Event Grid stand-in over Azurite, and the one-command local stack (local_host.dev)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from azure.storage.blob import BlobServiceClient

from local_host import build_web_app
from local_host.blob_trigger import webhook_url
from local_host.dev import azurite_connection_string, is_listening
from local_host.event_grid import SubscriptionRefused, WatchedBlobs, open_relay, watched_blobs
from tests.helpers import read_lines, wait_for_line
from tests.local_host_blob_app import app as blob_app
from tests.local_host_storage import BlobAppStorage
from tests.stack import REPO_ROOT, free_port


async def eventually(condition: Callable[[], bool], timeout: float = 10) -> float:
    """Wait until ``condition()`` holds; return how long it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def record_url(server: TestServer) -> str:
    return webhook_url(str(server.make_url("")).rstrip("/"), "record_blob")


def heads(storage: BlobAppStorage) -> list[str]:
    return [record["head"] for record in storage.records()]


# --- the relay against the local host --------------------------------------------------------


def test_each_new_or_changed_blob_is_delivered_once(
    azurite: str, blob_app_storage: BlobAppStorage
) -> None:
    storage = blob_app_storage
    storage.upload("incoming/before.bin", b"before")
    storage.upload("elsewhere/ignored.bin", b"ignored")

    async def scenario() -> float:
        async with (
            TestServer(build_web_app(blob_app)) as server,
            open_relay(
                WatchedBlobs(azurite, storage.name, "incoming/", record_url(server))
            ) as relay,
        ):
            relaying = asyncio.create_task(relay.run(interval_seconds=0.2))
            # Blobs already there at start count as new.
            await eventually(lambda: heads(storage) == ["before"])
            await asyncio.to_thread(storage.upload, "incoming/after.bin", b"after")
            latency = await eventually(lambda: heads(storage) == ["before", "after"])
            await asyncio.sleep(1)  # about five more polls: nothing is delivered twice
            assert heads(storage) == ["before", "after"]
            # A new ETag is a new version, even under the same name.
            await asyncio.to_thread(storage.upload, "incoming/after.bin", b"after, again")
            await eventually(lambda: heads(storage) == ["before", "after", "after, again"])
            relaying.cancel()
            return latency

    assert asyncio.run(scenario()) < 3


def test_a_webhook_without_the_function_refuses_the_subscription(
    azurite: str, blob_app_storage: BlobAppStorage
) -> None:
    async def scenario() -> None:
        async with TestServer(build_web_app(blob_app)) as server:
            url = webhook_url(str(server.make_url("")).rstrip("/"), "no_such_function")
            async with open_relay(WatchedBlobs(azurite, blob_app_storage.name, "", url)) as relay:
                await relay.validate_subscription(wait_seconds=5)

    with pytest.raises(SubscriptionRefused, match="HTTP 404"):
        asyncio.run(scenario())


def test_what_to_watch_comes_from_the_apps_blob_trigger(
    azurite: str, blob_app_storage: BlobAppStorage
) -> None:
    watched = watched_blobs(blob_app, "record_blob", "http://127.0.0.1:7071/")
    assert watched.connection_string == azurite  # the binding's connection setting
    assert (watched.container, watched.prefix) == (blob_app_storage.name, "incoming/")
    assert watched.webhook_url == (
        "http://127.0.0.1:7071/runtime/webhooks/blobs?functionName=Host.Functions.record_blob"
    )
    with pytest.raises(ValueError, match=r"\['record_blob', 'reject_blob'\]"):
        watched_blobs(blob_app, None, "http://127.0.0.1:7071")


# --- the relay against a webhook that fails --------------------------------------------------


class FlakyWebhook:
    """Answers the handshake, then fails each blob's first ``failures[name]`` deliveries."""

    def __init__(self, failures: dict[str, int]) -> None:
        self.failures = failures
        self.deliveries: list[tuple[str, dict[str, Any]]] = []  # (delivery count, event)

    async def handle(self, request: web.Request) -> web.Response:
        [event] = await request.json()
        if request.headers["aeg-event-type"] == "SubscriptionValidation":
            return web.json_response({"validationResponse": event["data"]["validationCode"]})
        self.deliveries.append((request.headers["aeg-delivery-count"], event))
        name = event["subject"].rpartition("/")[2]
        failed_so_far = sum(1 for _, e in self.deliveries if e["subject"] == event["subject"]) - 1
        return web.Response(status=500 if failed_so_far < self.failures.get(name, 0) else 202)


def test_failed_deliveries_are_retried_then_given_up(
    azurite: str, blob_app_storage: BlobAppStorage
) -> None:
    storage = blob_app_storage
    etag = storage.upload("incoming/flaky.bin", b"flaky")
    storage.upload("incoming/broken.bin", b"broken")
    webhook = FlakyWebhook({"flaky.bin": 2, "broken.bin": 99})

    async def scenario() -> list[int]:
        web_app = web.Application()
        web_app.router.add_post("/hook", webhook.handle)
        async with (
            TestServer(web_app) as server,
            open_relay(
                WatchedBlobs(azurite, storage.name, "", str(server.make_url("/hook")))
            ) as relay,
        ):
            relay.first_backoff_seconds = 0.01
            await relay.validate_subscription()
            return [await relay.poll_once(), await relay.poll_once()]

    assert asyncio.run(scenario()) == [1, 0]  # flaky delivered; broken given up, not retried
    flaky = [(count, e) for count, e in webhook.deliveries if e["subject"].endswith("flaky.bin")]
    broken = [count for count, e in webhook.deliveries if e["subject"].endswith("broken.bin")]
    assert [count for count, _ in flaky] == ["0", "1", "2"]
    assert broken == ["0", "1", "2", "3"]
    event = flaky[-1][1]
    assert event["eventType"] == "Microsoft.Storage.BlobCreated"
    assert event["subject"] == (
        f"/blobServices/default/containers/{storage.name}/blobs/incoming/flaky.bin"
    )
    assert event["topic"].endswith("/providers/Microsoft.Storage/storageAccounts/devstoreaccount1")
    assert event["metadataVersion"] == "1"
    assert {key: event["data"][key] for key in ("api", "blobType", "contentLength", "eTag")} == {
        "api": "PutBlob",
        "blobType": "BlockBlob",
        "contentLength": 5,
        "eTag": etag,
    }
    assert event["data"]["url"].endswith(f"/devstoreaccount1/{storage.name}/incoming/flaky.bin")


# --- the command lines ---------------------------------------------------------------------


@pytest.mark.slow
def test_blob_events_command_delivers_and_stops_on_ctrl_c(
    azurite: str, blob_app_storage: BlobAppStorage
) -> None:
    storage = blob_app_storage

    async def scenario() -> tuple[int, str]:
        async with TestServer(build_web_app(blob_app)) as server:
            relay = subprocess.Popen(
                [
                    *(sys.executable, "-m", "local_host.event_grid"),
                    # The storage, container, prefix and webhook come from what the app declares.
                    *("--app", "tests.local_host_blob_app", "--function", "record_blob"),
                    *("--host-url", str(server.make_url("")), "--interval", "0.2"),
                ],
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                await asyncio.to_thread(storage.upload, "incoming/cli.bin", b"from the cli")
                await eventually(lambda: heads(storage) == ["from the cli"], timeout=30)
                relay.send_signal(signal.SIGINT)
                status = await asyncio.to_thread(relay.wait, 15)
            finally:
                if relay.poll() is None:
                    relay.kill()
            return status, relay.stdout.read()

    status, output = asyncio.run(scenario())
    assert status == 0
    assert "Subscription validated" in output
    assert f"Delivered BlobCreated for {storage.name}/incoming/cli.bin (attempt 1)" in output
    assert "Traceback" not in output


@pytest.mark.slow
def test_dev_stack_runs_azurite_host_and_events_then_stops_cleanly(tmp_path: Path) -> None:
    host_port, azurite_port = free_port(), free_port()
    record_file = tmp_path / "record.jsonl"
    environment = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        # The blob test app's settings; dev points UseDevelopmentStorage=true at its Azurite.
        "MODELS_STORAGE": "UseDevelopmentStorage=true",
        "MODELS_CONTAINER": "models",
        "TEST_STORAGE": "UseDevelopmentStorage=true",
        "TEST_CONTAINER": "models",
        "TEST_RECORD_FILE": str(record_file),
    }
    stack = subprocess.Popen(
        [
            *(sys.executable, "-m", "local_host.dev", "--app", "tests.local_host_blob_app"),
            *("--host", "127.0.0.1", "--port", str(host_port)),
            *("--azurite-port", str(azurite_port), "--azurite-dir", str(tmp_path / "azurite")),
            *("--blob-function", "record_blob"),
        ],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = read_lines(stack)
        azurite_pid = int(wait_for_line(lines, r"Azurite started \(pid (\d+)\)").group(1))
        wait_for_line(
            lines, rf"events +BlobCreated in models/incoming/ -> http://127\.0\.0\.1:{host_port}/"
        )
        upload_and_wait_for_record(azurite_port, "incoming/e2e.bin", record_file)

        # Azurite dies: the host keeps serving, and Azurite is started again.
        os.kill(azurite_pid, signal.SIGKILL)
        wait_for_line(lines, r"Azurite exited with status -9; the app keeps serving")
        with pytest.raises(urllib.error.HTTPError) as not_found:
            urllib.request.urlopen(f"http://127.0.0.1:{host_port}/api/nothing", timeout=10)
        assert not_found.value.code == 404
        restarted_pid = int(wait_for_line(lines, r"Azurite started \(pid (\d+)\)").group(1))
        assert restarted_pid != azurite_pid
        wait_for_line(lines, r"Azurite is back, with the app's containers")
        # The restarted Azurite keeps its data, and events flow again.
        upload_and_wait_for_record(azurite_port, "incoming/after-restart.bin", record_file)
        stack.send_signal(signal.SIGINT)
        assert stack.wait(timeout=30) == 0
    finally:
        if stack.poll() is None:
            # SIGTERM first: the stack then stops its children, which a kill would leave running.
            stack.terminate()
            try:
                stack.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stack.kill()
    assert not is_listening("127.0.0.1", host_port)
    assert not is_listening("127.0.0.1", azurite_port)
    assert any((tmp_path / "azurite").iterdir())


def upload_and_wait_for_record(azurite_port: int, name: str, record_file: Path) -> None:
    """Upload ``models/<name>`` and wait (generously) until the blob trigger has recorded it."""
    with BlobServiceClient.from_connection_string(
        azurite_connection_string(azurite_port)
    ) as service:
        service.get_blob_client("models", name).upload_blob(b"end to end")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        records = record_file.read_text().splitlines() if record_file.exists() else []
        if f"models/{name}" in [json.loads(record)["name"] for record in records]:
            return
        time.sleep(0.1)
    raise AssertionError(f"models/{name} was not recorded in 30 s")
