"""The pace of /api/models: a flood waits its turn; a caller that would wait too long gets 429."""

from __future__ import annotations

import asyncio
import time

import pytest

from functions.api import handlers
from functions.api.pacing import Pacer
from functions.api.problems import TooManyRequests
from functions.composition import Services
from tests.helpers import http_request, problem_of


def test_answers_are_spaced_at_the_pace():
    pacer = Pacer(per_second=100, max_wait_seconds=5)

    async def twenty_at_once() -> float:
        started = time.monotonic()
        await asyncio.gather(*(pacer.wait_turn() for _ in range(20)))
        return time.monotonic() - started

    # 20 callers at 100 a second: the last one answers about 0.19 s after the first.
    assert 0.17 <= asyncio.run(twenty_at_once()) < 2.0


def test_a_caller_that_would_wait_too_long_is_refused_with_retry_after():
    pacer = Pacer(per_second=10, max_wait_seconds=0.25)

    async def five_at_once() -> list[object]:
        return await asyncio.gather(*(pacer.wait_turn() for _ in range(5)), return_exceptions=True)

    outcomes = asyncio.run(five_at_once())
    # Slots at 0, 0.1 and 0.2 s are within the wait; 0.3 and 0.4 s are not.
    assert outcomes[:3] == [None, None, None]
    assert all(isinstance(outcome, TooManyRequests) for outcome in outcomes[3:])
    assert outcomes[3].headers == {"Retry-After": "1"}


def test_a_flood_of_the_models_endpoint_is_paced_and_refused_as_problem_json():
    services = Services(models_pace=Pacer(per_second=20, max_wait_seconds=0.2))
    request = http_request("GET", "models")

    async def flood() -> list:
        return await asyncio.gather(*(handlers.models(request, services) for _ in range(12)))

    started = time.monotonic()
    responses = asyncio.run(flood())
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 5 + [429] * 7  # slots at 0, 50, ..., 200 ms
    assert time.monotonic() - started >= 0.19
    refused = next(response for response in responses if response.status_code == 429)
    assert refused.headers["Retry-After"] == "1"
    assert refused.mimetype == "application/problem+json"
    assert problem_of(refused)["status"] == 429


@pytest.mark.parametrize("per_second", [0.5, 50])
def test_retry_after_is_a_whole_number_of_seconds(per_second):
    pacer = Pacer(per_second=per_second, max_wait_seconds=0)

    async def two() -> list[object]:
        return await asyncio.gather(pacer.wait_turn(), pacer.wait_turn(), return_exceptions=True)

    first, second = asyncio.run(two())
    assert first is None
    assert isinstance(second, TooManyRequests)
    assert int(second.headers["Retry-After"]) >= 1
