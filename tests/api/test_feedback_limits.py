"""The ways around POST /api/feedback's limits, each tried (contracts.md section 4): a fresh
X-Forwarded-For address per post through the local host, an IPv6 /48 gone through /64 by /64,
requests without an address, and many clients at once against one instance's daily and
per-minute caps. tests/api/test_feedback_api.py has the endpoint itself and the limit's basics."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import textwrap
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from azure.storage.blob import ContainerClient

from functions.api.problems import TooManyRequests
from functions.api.rate_limit import (
    NETWORK_FACTOR,
    SECONDS_A_DAY,
    Client,
    ClientRateLimit,
    InstanceFull,
    client_address,
)
from functions.composition import Services
from functions.feedback.store import FeedbackStore
from functions.settings import settings
from local_host.server import host_app
from tests.api.test_feedback_api import ManualClock, correction, send, stored
from tests.helpers import problem_of
from tests.stack import running_local_host

PER_MINUTE = 10  # the default FEEDBACK_PER_MINUTE
MIDNIGHT = 20_000 * SECONDS_A_DAY  # a UTC midnight, as Unix time


def drawings(count: int) -> list[np.ndarray]:
    """`count` different drawings (a bar, moved and thickened), each a different item."""
    images = []
    for n in range(count):
        pixels = np.zeros((28, 28), dtype=np.uint8)
        top, left, width = 2 + n % 20, 2 + (n // 20) % 20, 1 + n // 400
        pixels[top : top + 6, left : left + width] = 255
        images.append(pixels)
    assert len({image.tobytes() for image in images}) == count
    return images


def limited_api(container: ContainerClient, limit: ClientRateLimit):
    return Services(feedback_store=FeedbackStore(container), feedback_limit=limit)


# --- a fresh X-Forwarded-For address per post --------------------------------------------------


def test_the_local_host_appends_the_peer_as_azures_front_end_does(tmp_path, restored_imports):
    """What the function sees: the client's X-Forwarded-For with the address the connection came
    from last, so that the last entry is always the real client, whatever the client wrote."""
    (tmp_path / "function_app.py").write_text(
        textwrap.dedent(
            """
            import azure.functions as func

            app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

            @app.route(route="forwarded", methods=["POST"])
            def forwarded(req: func.HttpRequest) -> func.HttpResponse:
                return func.HttpResponse(req.headers.get("X-Forwarded-For") or "")
            """
        )
    )

    async def scenario() -> list[str]:
        async with TestClient(TestServer(await host_app(tmp_path))) as client:
            seen = []
            for headers in (
                {},
                {"X-Forwarded-For": "203.0.113.9"},
                {"X-Forwarded-For": "198.51.100.1, [2001:db8::1]:443"},
            ):
                seen.append(await (await client.post("/api/forwarded", headers=headers)).text())
            return seen

    assert asyncio.run(scenario()) == [
        "127.0.0.1",
        "203.0.113.9,127.0.0.1",
        "198.51.100.1, [2001:db8::1]:443,127.0.0.1",
    ]
    assert client_address({"X-Forwarded-For": "203.0.113.9,127.0.0.1"}) == Client("127.0.0.1")


@pytest.fixture(scope="module")
def hosted_feedback(azurite, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """The repository's function app on `python -m local_host`, at the default
    FEEDBACK_PER_MINUTE, with a feedback container of its own: (API URL, container name)."""
    name = f"spoofed-{uuid.uuid4().hex[:8]}"
    environment = {
        **os.environ,
        "MODELS_STORAGE": azurite,
        "FEEDBACK_CONTAINER": name,
        "FEEDBACK_PER_MINUTE": str(PER_MINUTE),
    }
    log = tmp_path_factory.mktemp("spoofed") / "host.log"
    with running_local_host(environment, log) as url:
        yield url, name
    ContainerClient.from_connection_string(azurite, name).delete_container()


def post(url: str, body: dict, forwarded: str, source: str = "127.0.0.1") -> int:
    """POST /api/feedback over a connection from `source` (any loopback address), claiming to
    be `forwarded`."""
    target = http.client.urlsplit(url)
    connection = http.client.HTTPConnection(
        target.hostname, target.port, timeout=30, source_address=(source, 0)
    )
    try:
        connection.request(
            "POST",
            f"{target.path}/feedback",
            json.dumps(body),
            {"Content-Type": "application/json", "X-Forwarded-For": forwarded},
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_a_fresh_forwarded_address_per_post_is_still_one_client(hosted_feedback, azurite):
    """The attack as reported: every post claims another address. Through the local host, as
    through Azure's front end, the connection's own address is last, and that is the client."""
    url, name = hosted_feedback
    images = drawings(3 * PER_MINUTE + 1)
    statuses = [
        post(url, correction(image, 7), forwarded=f"198.51.{n // 250}.{n % 250 + 1}")
        for n, image in enumerate(images[: 3 * PER_MINUTE])
    ]
    assert statuses.count(202) == PER_MINUTE
    assert statuses.count(429) == 2 * PER_MINUTE
    # Another address (a connection from another loopback address) is another client.
    assert post(url, correction(images[-1], 7), "198.51.100.1", source="127.0.0.2") == 202
    container = ContainerClient.from_connection_string(azurite, name)
    assert len(list(container.list_blobs())) == PER_MINUTE + 1


# --- IPv6: a /48 gone through /64 by /64 ----------------------------------------------------


def test_the_64s_of_one_48_share_its_allowance():
    """A /48 holds 65,536 /64s; each is a client of its own, but together they may send no more
    than NETWORK_FACTOR clients' allowance (before: 10 each, 655,360 a minute)."""
    clock = ManualClock()
    limit = ClientRateLimit(PER_MINUTE, clock=clock)
    accepted = 0
    for subnet in range(65_536):
        try:
            limit.take(client_address({"X-Forwarded-For": f"[2001:db8:7:{subnet:x}::1]:443"}))
            accepted += 1
        except TooManyRequests:
            pass
    assert accepted == NETWORK_FACTOR * PER_MINUTE
    # The /48 refills at its own rate; another /48 has its own allowance.
    clock.now += 60 / (NETWORK_FACTOR * PER_MINUTE)
    limit.take(client_address({"X-Forwarded-For": "2001:db8:7:ffff::2"}))
    limit.take(client_address({"X-Forwarded-For": "2001:db8:8::1"}))
    assert len(limit._buckets) <= limit.max_clients


def test_rotating_64s_through_the_endpoint_stores_a_48s_allowance(feedback_container):
    limit = ClientRateLimit(PER_MINUTE, clock=ManualClock())
    api = limited_api(feedback_container, limit)
    images = drawings(NETWORK_FACTOR * PER_MINUTE + 11)
    statuses = [
        send(api, correction(image, 7), client=f"2001:db8:7:{n:x}::1").status_code
        for n, image in enumerate(images[:-1])
    ]
    assert statuses.count(202) == NETWORK_FACTOR * PER_MINUTE
    assert statuses.count(429) == 10
    refused = send(api, correction(images[-1], 7), client="2001:db8:7:ffff::1")
    assert refused.status_code == 429
    assert "network" in problem_of(refused)["detail"]
    assert refused.headers["Retry-After"] == "2"  # 40 a minute: the next one in 1.5 s
    # One /64 still has its own limit inside its /48's.
    other = ClientRateLimit(PER_MINUTE, clock=ManualClock())
    for _ in range(PER_MINUTE):
        other.take(client_address({"X-Forwarded-For": "2001:db8:9::1"}))
    with pytest.raises(TooManyRequests, match="address"):
        other.take(client_address({"X-Forwarded-For": "2001:db8:9::2"}))
    assert len(stored(feedback_container)) == NETWORK_FACTOR * PER_MINUTE


# --- no address ---------------------------------------------------------------------------


@pytest.mark.parametrize("forwarded", [None, "", "unknown", "198.51.100.1, not-an-address"])
def test_a_request_without_an_address_is_refused_and_drains_no_one(feedback_container, forwarded):
    """Before, every such request was one client: any one caller could spend its allowance for
    all of them. Now none is taken, none is counted, and everyone else's allowance is whole."""
    limit = ClientRateLimit(PER_MINUTE, per_instance_per_minute=600, clock=ManualClock())
    api = limited_api(feedback_container, limit)
    images = drawings(2)
    for _ in range(5 * PER_MINUTE):
        answer = send(api, correction(images[0], 7), client=forwarded)
        assert answer.status_code == 403
        assert "address" in problem_of(answer)["detail"]
    assert not limit._buckets
    assert limit._instance[0] == 600  # the instance's allowance untouched
    assert send(api, correction(images[1], 7), client="198.51.100.1").status_code == 202
    assert len(stored(feedback_container)) == 1


# --- one instance's caps, whoever sends --------------------------------------------------------


def test_the_instance_takes_at_most_its_minutes_allowance_from_all_clients(feedback_container):
    clock = ManualClock()
    limit = ClientRateLimit(PER_MINUTE, per_instance_per_minute=5, clock=clock)
    api = limited_api(feedback_container, limit)
    images = drawings(8)
    statuses = [
        send(api, correction(image, 7), client=f"198.51.100.{n + 1}").status_code
        for n, image in enumerate(images[:6])
    ]
    assert statuses == [202] * 5 + [503]
    full = send(api, correction(images[6], 7), client="198.51.100.99")
    assert full.status_code == 503
    assert full.headers["Retry-After"] == "12"  # 5 a minute: the next one in 12 s
    assert "no more corrections this minute" in problem_of(full)["detail"]
    clock.now += 12
    assert send(api, correction(images[6], 7), client="198.51.100.99").status_code == 202
    assert len(stored(feedback_container)) == 6


def test_the_instance_takes_at_most_its_days_allowance_until_midnight_utc():
    clock, wall = ManualClock(), ManualClock()
    wall.now = MIDNIGHT + 3600.0  # 01:00 UTC
    limit = ClientRateLimit(
        PER_MINUTE,
        per_instance_per_minute=600,
        per_instance_per_day=8,
        clock=clock,
        wall_clock=wall,
    )
    for n in range(8):
        limit.take(Client(f"198.51.100.{n}"))
    with pytest.raises(InstanceFull) as full:
        limit.take(Client("198.51.100.200"))
    assert full.value.headers["Retry-After"] == str(23 * 3600)
    assert full.value.problem()["status"] == 503
    clock.now += 3600
    wall.now = MIDNIGHT + SECONDS_A_DAY - 1
    with pytest.raises(InstanceFull):
        limit.take(Client("198.51.100.201"))
    wall.now = MIDNIGHT + SECONDS_A_DAY  # a new UTC day
    limit.take(Client("198.51.100.201"))


def test_one_clients_refused_flood_spends_nothing_of_the_instances_allowance():
    limit = ClientRateLimit(PER_MINUTE, per_instance_per_minute=20, clock=ManualClock())
    refused = 0
    for _ in range(1000):
        try:
            limit.take(Client("203.0.113.5"))
        except TooManyRequests:
            refused += 1
    assert refused == 1000 - PER_MINUTE
    for n in range(20 - PER_MINUTE):  # what is left of the instance's minute: everyone else's
        limit.take(Client(f"198.51.100.{n}"))
    with pytest.raises(InstanceFull):
        limit.take(Client("198.51.100.250"))


def test_the_endpoint_takes_the_instance_caps_from_the_settings(feedback_container, monkeypatch):
    monkeypatch.setenv("MODELS_STORAGE", "UseDevelopmentStorage=true")
    monkeypatch.setenv("FEEDBACK_PER_INSTANCE_PER_MINUTE", "3")
    settings.cache_clear()
    try:
        services = Services(feedback_store=FeedbackStore(feedback_container))
        images = drawings(4)
        statuses = [
            send(services, correction(image, 7), client=f"198.51.100.{n}").status_code
            for n, image in enumerate(images)
        ]
    finally:
        settings.cache_clear()
    assert statuses == [202, 202, 202, 503]
