"""The Event Grid stand-in over Azurite, and the one-command local stack (local_stack)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from azure.storage.blob import BlobServiceClient

from local_host.event_grid import webhook_url
from local_host.server import WORKER_KEY, host_app
from local_stack.azurite import azurite_connection_string, is_listening
from local_stack.event_grid import (
    BlobEventRelay,
    Subscription,
    SubscriptionRefused,
    opened_relay,
    relay_blob_events,
)
from tests.helpers import read_lines, wait_for_line
from tests.local_host_storage import BlobAppStorage
from tests.stack import REPO_ROOT, free_port, running_azurite

APP = REPO_ROOT / "tests" / "apps" / "event_grid_app"


async def eventually(condition: Callable[[], bool], timeout: float = 10) -> float:
    """Wait until ``condition()`` holds; return how long it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture(autouse=True)
def _each_test_restores_imports(restored_imports: None) -> None:
    """Each test here hosts an app (tests/conftest.py puts the repository's own back)."""


@contextlib.asynccontextmanager
async def served_app() -> AsyncIterator[TestServer]:
    """The Event Grid test app, hosted behind a real local socket."""
    web_app = await host_app(APP)
    try:
        async with TestServer(web_app) as server:
            yield server
    finally:
        web_app[WORKER_KEY].stop()


def function_url(server: TestServer, function_name: str) -> str:
    return webhook_url(str(server.make_url("")).rstrip("/"), function_name)


def delivered(storage: BlobAppStorage) -> list[tuple[str, str]]:
    """(blob name, ETag) of each event the test app's record_event got, in order."""
    prefix = f"/blobServices/default/containers/{storage.name}/blobs/"
    return [
        (record["subject"].removeprefix(prefix), record["data"]["eTag"])
        for record in storage.records()
    ]


# --- the relay against the local host --------------------------------------------------------


def test_each_new_or_changed_blob_is_delivered_once(
    azurite: str, blob_app_storage: BlobAppStorage
) -> None:
    storage = blob_app_storage
    before = storage.upload("incoming/before.bin", b"before")
    storage.upload("elsewhere/ignored.bin", b"ignored")

    async def scenario() -> float:
        async with served_app() as server:
            subscription = Subscription(
                azurite, storage.name, "incoming/", function_url(server, "record_event")
            )
            async with opened_relay(subscription) as relay:
                relaying = asyncio.create_task(relay.run(interval_seconds=0.2))
                try:
                    # Blobs already there at start count as new.
                    await eventually(
                        lambda: delivered(storage) == [("incoming/before.bin", before)]
                    )
                    after = await asyncio.to_thread(storage.upload, "incoming/after.bin", b"after")
                    expected = [("incoming/before.bin", before), ("incoming/after.bin", after)]
                    latency = await eventually(lambda: delivered(storage) == expected)
                    await asyncio.sleep(1)  # about five more polls: nothing is delivered twice
                    assert delivered(storage) == expected
                    # A new ETag is a new version, even under the same name.
                    again = await asyncio.to_thread(
                        storage.upload, "incoming/after.bin", b"after, again"
                    )
                    assert again != after
                    expected.append(("incoming/after.bin", again))
                    await eventually(lambda: delivered(storage) == expected)
                finally:
                    relaying.cancel()
                return latency

    latency = asyncio.run(scenario())
    assert latency < 3
    [record, *_] = storage.records()
    assert record["event_type"] == "Microsoft.Storage.BlobCreated"
    assert record["data"]["url"].endswith(f"/devstoreaccount1/{storage.name}/incoming/before.bin")


def test_a_webhook_without_the_function_refuses_the_subscription(
    azurite: str, blob_app_storage: BlobAppStorage, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with served_app() as server:
            subscription = Subscription(
                azurite, blob_app_storage.name, "", function_url(server, "no_such_function")
            )
            async with opened_relay(subscription) as relay:
                with pytest.raises(SubscriptionRefused, match="HTTP 404"):
                    await relay.validate_subscription(wait_seconds=5)
            # The stack's relay logs the refusal and posts nothing, rather than failing.
            await asyncio.wait_for(relay_blob_events(subscription, interval_seconds=0.1), 10)

    blob_app_storage.upload("incoming/unposted.bin", b"unposted")
    with caplog.at_level(logging.WARNING, logger="local_stack.event_grid"):
        asyncio.run(scenario())
    [refusal] = [r for r in caplog.records if "Not posting blob events" in r.getMessage()]
    assert refusal.levelno == logging.WARNING
    assert "no_such_function answered the validation handshake with HTTP 404" in (
        refusal.getMessage()
    )
    assert blob_app_storage.records() == []


# --- the relay against a webhook that fails --------------------------------------------------


class FlakyWebhook:
    """Answers the handshake, then fails each blob's first ``failures[name]`` deliveries."""

    def __init__(self, failures: dict[str, int] | None = None) -> None:
        self.failures = failures or {}
        self.deliveries: list[tuple[str, dict[str, Any]]] = []  # (delivery count, event)

    async def handle(self, request: web.Request) -> web.Response:
        [event] = await request.json()
        if request.headers["aeg-event-type"] == "SubscriptionValidation":
            return web.json_response({"validationResponse": event["data"]["validationCode"]})
        assert request.headers["aeg-event-type"] == "Notification"
        self.deliveries.append((request.headers["aeg-delivery-count"], event))
        name = event["subject"].rpartition("/")[2]
        failed_so_far = sum(1 for _, e in self.deliveries if e["subject"] == event["subject"]) - 1
        return web.Response(status=500 if failed_so_far < self.failures.get(name, 0) else 202)

    @contextlib.asynccontextmanager
    async def served(self) -> AsyncIterator[str]:
        """Its URL while it is served."""
        web_app = web.Application()
        web_app.router.add_post("/hook", self.handle)
        async with TestServer(web_app) as server:
            yield str(server.make_url("/hook"))


def test_failed_deliveries_are_retried_then_given_up(
    azurite: str, blob_app_storage: BlobAppStorage
) -> None:
    storage = blob_app_storage
    etag = storage.upload("incoming/flaky.bin", b"flaky")
    storage.upload("incoming/broken.bin", b"broken")
    webhook = FlakyWebhook({"flaky.bin": 2, "broken.bin": 99})

    async def scenario() -> list[int]:
        async with (
            webhook.served() as url,
            opened_relay(Subscription(azurite, storage.name, "", url)) as relay,
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


class ListedContainer:
    """A container whose listing the test sets (blob name -> ETag): a blob that comes back with
    the same ETag after a delete cannot be made in Azurite, which gives every upload a new one."""

    container_name, account_name = "models", "devstoreaccount1"
    url = "http://127.0.0.1:10000/devstoreaccount1/models"

    def __init__(self) -> None:
        self.blobs: dict[str, str] = {}

    async def list_blobs(self, name_starts_with: str = "") -> AsyncIterator[Any]:
        for name, etag in list(self.blobs.items()):
            if name.startswith(name_starts_with):
                settings = SimpleNamespace(content_type=None)
                yield SimpleNamespace(name=name, etag=etag, size=1, content_settings=settings)

    def get_blob_client(self, name: str) -> Any:
        return SimpleNamespace(url=f"{self.url}/{name}")


def test_a_deleted_blob_is_forgotten_so_that_it_is_new_when_it_comes_back() -> None:
    webhook, container = FlakyWebhook(), ListedContainer()

    async def scenario() -> list[int]:
        async with webhook.served() as url, aiohttp.ClientSession() as session:
            subscription = Subscription("unused", "models", "incoming/", url)
            relay = BlobEventRelay(container, subscription, session)  # type: ignore[arg-type]
            container.blobs["incoming/a.onnx"] = '"0x1"'
            polls = [await relay.poll_once(), await relay.poll_once()]
            del container.blobs["incoming/a.onnx"]
            polls.append(await relay.poll_once())
            container.blobs["incoming/a.onnx"] = '"0x1"'  # the same name and ETag, once more
            return [*polls, await relay.poll_once()]

    assert asyncio.run(scenario()) == [1, 0, 0, 1]
    assert [e["data"]["eTag"] for _, e in webhook.deliveries] == ['"0x1"', '"0x1"']


# --- the dev stack ---------------------------------------------------------------------------


@contextlib.contextmanager
def running_stack(tmp_path: Path, host_port: int, azurite_port: int) -> Iterator[Any]:
    """`python -m local_stack` serving the app as `make run` does; its output lines."""
    environment = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        # The app's own settings; dev points UseDevelopmentStorage=true at its Azurite.
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "MODELS_STORAGE": "UseDevelopmentStorage=true",
        "MODELS_CONTAINER": "models",
    }
    stack = subprocess.Popen(
        [
            *(sys.executable, "-m", "local_stack", "--no-site"),
            *("--host", "127.0.0.1", "--port", str(host_port)),
            *("--azurite-port", str(azurite_port), "--azurite-dir", str(tmp_path / "azurite")),
        ],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield stack
    finally:
        if stack.poll() is None:
            # SIGTERM first: the stack then stops its children, which a kill would leave running.
            stack.terminate()
            try:
                stack.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stack.kill()
                stack.wait()


@pytest.mark.slow
def test_dev_stack_runs_azurite_host_and_events_then_stops_cleanly(tmp_path: Path) -> None:
    host_port, azurite_port = free_port(), free_port()
    with running_stack(tmp_path, host_port, azurite_port) as stack:
        lines = read_lines(stack)
        azurite_pid = int(wait_for_line(lines, r"Azurite started \(pid (\d+)\)").group(1))
        wait_for_line(
            lines,
            r"events +BlobCreated in models/incoming/ -> http://127\.0\.0\.1:"
            rf"{host_port}/runtime/webhooks/eventgrid\?functionName=promote_model",
        )
        drop_and_wait_for_the_decision(azurite_port, "e2e-1")

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
        drop_and_wait_for_the_decision(azurite_port, "e2e-2")

        stack.send_signal(signal.SIGTERM)
        assert stack.wait(timeout=30) == 0
    assert not is_listening("127.0.0.1", host_port)
    assert not is_listening("127.0.0.1", azurite_port)
    assert any((tmp_path / "azurite").iterdir())


@pytest.mark.slow
def test_dev_stack_on_port_0_posts_events_to_the_port_it_serves_on(tmp_path: Path) -> None:
    with running_stack(tmp_path, 0, free_port()) as stack:
        lines = read_lines(stack)
        events = wait_for_line(lines, r"events +BlobCreated in models/incoming/ -> \S+:(\d+)/")
        listening = wait_for_line(lines, r"Listening on http://127\.0\.0\.1:(\d+)")
        assert events.group(1) == listening.group(1) != "0"
        wait_for_line(lines, r"Event Grid subscription to promote_model validated")
        stack.send_signal(signal.SIGTERM)
        assert stack.wait(timeout=30) == 0


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie nobody has reaped yet counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the death signal is Linux's")
def test_a_stack_killed_outright_takes_its_azurite_along(tmp_path: Path) -> None:
    """kill -9 gives the stack no chance to stop Azurite: the kernel does (PR_SET_PDEATHSIG),
    so no Azurite is left running unsupervised for the next stack to find."""
    azurite_port = free_port()
    with running_stack(tmp_path, free_port(), azurite_port) as stack:
        lines = read_lines(stack)
        azurite_pid = int(wait_for_line(lines, r"Azurite started \(pid (\d+)\)").group(1))
        try:
            wait_for_line(lines, r"Listening on http://")
            # The process started is node itself: the signal reaches Azurite, not a launcher.
            assert Path(f"/proc/{azurite_pid}/comm").read_text().strip() == "node"
            stack.kill()
            stack.wait()
            killed = time.monotonic()
            while running(azurite_pid) and time.monotonic() - killed < 10:
                time.sleep(0.05)
            gone_after = time.monotonic() - killed
            assert not running(azurite_pid), "Azurite outlived the stack by 10 s"
            assert not is_listening("127.0.0.1", azurite_port)
            assert gone_after < 5, f"Azurite took {gone_after:.1f} s to go"
        finally:
            if running(azurite_pid):
                os.kill(azurite_pid, signal.SIGKILL)


@pytest.mark.slow
def test_an_azurite_found_on_the_port_is_used_unsupervised_and_said_so(tmp_path: Path) -> None:
    with running_azurite(tmp_path / "found") as found:
        with running_stack(tmp_path, free_port(), found.port) as stack:
            lines = read_lines(stack)
            warning = wait_for_line(
                lines, rf"127\.0\.0\.1:{found.port} is taken already(, by pid (\d+))?.*UNSUPERVISED"
            )
            if sys.platform.startswith("linux"):  # the log names it
                assert int(warning.group(2)) == found.process.pid
            wait_for_line(lines, rf"Azurite +\S+:{found.port}/\S+ \(found running: NOT supervised")
            wait_for_line(lines, r"Listening on http://")
            stack.send_signal(signal.SIGTERM)
            assert stack.wait(timeout=30) == 0
        # The stack stopped what it started, and left the Azurite it found alone.
        assert found.process.poll() is None
        assert is_listening("127.0.0.1", found.port)


def drop_and_wait_for_the_decision(azurite_port: int, version: str) -> None:
    """Drop a file that is no model into models/incoming/ and wait (generously) until the
    app's promote_model, called by the stand-in's event, has rejected it."""
    with BlobServiceClient.from_connection_string(
        azurite_connection_string(azurite_port)
    ) as service:
        models = service.get_container_client("models")
        models.upload_blob(f"incoming/{version}.onnx", b"not a model")
        rejection = models.get_blob_client(f"rejected/{version}.json")
        deadline = time.monotonic() + 60
        while not rejection.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"incoming/{version}.onnx was not decided in 60 s")
            time.sleep(0.2)
        assert not models.get_blob_client(f"incoming/{version}.onnx").exists()
