"""The swap under load: the local host serving, 20 clients sending requests without pause, a
new version published through the drop zone and the Event Grid stand-in. Every response after
promotion + refresh + 5 s reports the new version, and not one request fails."""

from __future__ import annotations

import asyncio
import json
import os
import time

import aiohttp
import pytest
from azure.storage.blob import ContainerClient

from conversion.publish import publish
from functions.serving.provider import BUNDLED_MODEL
from tests.helpers import onnx_bytes_with_version
from tests.stack import running_local_host

pytestmark = pytest.mark.slow

CLIENTS = 20
REFRESH_SECONDS = 1.0
GRACE_SECONDS = 5.0
NEW_VERSION = "swap-v2"


@pytest.fixture
def stack(azurite_process, tmp_path):
    """Host and Event Grid stand-in, on their own container, as `make run` runs them."""
    container = ContainerClient.from_connection_string(azurite_process.connection_string, "swap")
    container.create_container()
    environment = {
        **os.environ,
        "MODELS_STORAGE": azurite_process.connection_string,
        "MODELS_CONTAINER": "swap",
        "MODEL_REFRESH_SECONDS": str(REFRESH_SECONDS),
    }
    log = tmp_path / "stack.log"
    with running_local_host(environment, log, "--no-site", stack=azurite_process) as base:
        yield base, container


def current_version(container: ContainerClient) -> str | None:
    blob = container.get_blob_client("current.json")
    return json.loads(blob.download_blob().readall())["version"] if blob.exists() else None


async def load_until(url: str, body: bytes, stop: asyncio.Event, results: list) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as session:

        async def client() -> None:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    async with session.post(
                        url, data=body, headers={"Content-Type": "application/json"}
                    ) as response:
                        answer = await response.json(content_type=None)
                        ok = response.status == 200 and answer.get("prediction") == 7
                        results.append((started, ok, answer.get("model_version")))
                except (aiohttp.ClientError, json.JSONDecodeError):
                    results.append((started, False, None))

        await asyncio.gather(*(client() for _ in range(CLIENTS)))


def test_new_version_swaps_in_under_load_without_a_failed_request(stack, mnist):
    base, container = stack
    seven = mnist["x_test"][0]  # the first test digit is a 7
    body = json.dumps({"pixels": seven.ravel().tolist()}).encode()
    results: list = []

    async def scenario() -> tuple[float, float]:
        stop = asyncio.Event()
        load = asyncio.create_task(load_until(f"{base}/predict", body, stop, results))
        await asyncio.sleep(2)  # the old version under load first
        published = time.monotonic()
        await asyncio.to_thread(
            publish, container, onnx_bytes_with_version(BUNDLED_MODEL, NEW_VERSION), NEW_VERSION
        )
        while await asyncio.to_thread(current_version, container) != NEW_VERSION:
            if time.monotonic() - published > 60:
                pytest.fail("the new version was not promoted within 60 s")
            await asyncio.sleep(0.1)
        promoted = time.monotonic()
        await asyncio.sleep(REFRESH_SECONDS + GRACE_SECONDS + 2)
        stop.set()
        await load
        return published, promoted

    published, promoted = asyncio.run(scenario())
    failures = [result for result in results if not result[1]]
    settled = promoted + REFRESH_SECONDS + GRACE_SECONDS
    late_old = [result for result in results if result[0] > settled and result[2] != NEW_VERSION]
    first_new = min(result[0] for result in results if result[2] == NEW_VERSION)
    print(
        f"\n{len(results)} requests from {CLIENTS} clients; promoted {promoted - published:.2f} s "
        f"after publishing; first answer from the new version {first_new - published:.2f} s after "
        f"publishing; {len(failures)} failed requests"
    )
    assert failures == []
    assert late_old == []
    assert any(result[2] != NEW_VERSION for result in results)  # the old one served before
