"""The local host's timer trigger: NCRONTAB schedules, startup runs, failures, the admin run."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import pytest
from aiohttp.test_utils import TestClient, TestServer

from local_host import build_web_app, startup_listing
from local_host.app_functions import app_functions
from local_host.timer_trigger import TimerFunction

EVERY_SECOND = "*/1 * * * * *"
NEW_YEAR = "0 0 0 1 1 *"  # never fires during a test


def served(function_app: func.FunctionApp, scenario: Callable[[TestClient], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        async with TestClient(TestServer(build_web_app(function_app))) as client:
            return await scenario(client)

    return asyncio.run(run())


def idle_for(seconds: float) -> Callable[[TestClient], Awaitable[None]]:
    async def scenario(client: TestClient) -> None:
        await asyncio.sleep(seconds)

    return scenario


def test_a_timer_runs_on_its_schedule_with_a_timer_request() -> None:
    app = func.FunctionApp()
    runs: list[tuple[float, func.TimerRequest]] = []

    @app.timer_trigger(arg_name="timer", schedule=EVERY_SECOND)
    def tick(timer: func.TimerRequest) -> None:
        runs.append((time.time(), timer))

    served(app, idle_for(3.3))
    assert 3 <= len(runs) <= 4
    times = [at for at, _ in runs]
    # On whole seconds, a second apart.
    assert all(abs(at - round(at)) < 0.3 for at in times)
    assert all(0.7 < later - earlier < 1.3 for earlier, later in itertools.pairwise(times))
    timer = runs[0][1]
    assert timer.past_due is False
    assert datetime.fromisoformat(timer.schedule_status["Next"]) > datetime.fromtimestamp(
        times[0], UTC
    )


def test_run_on_startup() -> None:
    app = func.FunctionApp()
    reasons: list[str] = []

    @app.timer_trigger(arg_name="timer", schedule=NEW_YEAR, run_on_startup=True)
    async def reconcile(timer: func.TimerRequest) -> None:
        reasons.append("run")

    served(app, idle_for(0.3))
    assert reasons == ["run"]


def test_an_extra_serving_process_leaves_the_timers_to_the_first() -> None:
    app = func.FunctionApp()
    runs: list[float] = []

    @app.timer_trigger(arg_name="timer", schedule=EVERY_SECOND, run_on_startup=True)
    async def reconcile(timer: func.TimerRequest) -> None:
        runs.append(time.time())

    async def run() -> None:
        web_app = build_web_app(app, run_timers=False)
        async with TestClient(TestServer(web_app)):
            await asyncio.sleep(1.5)

    asyncio.run(run())
    assert runs == []


def test_a_failing_timer_is_logged_and_keeps_its_schedule(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = func.FunctionApp()
    attempts: list[float] = []

    @app.timer_trigger(arg_name="timer", schedule=EVERY_SECOND)
    def fails(timer: func.TimerRequest) -> None:
        attempts.append(time.time())
        raise RuntimeError("timer failure")

    with caplog.at_level(logging.INFO, logger="local_host"):
        served(app, idle_for(2.3))
    assert len(attempts) >= 2  # the schedule went on after the first failure
    failures = [r.getMessage() for r in caplog.records if r.exc_info]
    assert len(failures) == len(attempts)
    assert all(message.startswith("Executed 'Functions.fails' (Failed") for message in failures)


def test_a_run_that_outlasts_the_next_occurrence_is_followed_by_a_past_due_run() -> None:
    app = func.FunctionApp()
    past_due: list[bool] = []

    @app.timer_trigger(arg_name="timer", schedule=EVERY_SECOND)
    async def slow(timer: func.TimerRequest) -> None:
        past_due.append(timer.past_due)
        await asyncio.sleep(1.5)

    # The first run starts within a second and the second 1.5 s after it.
    served(app, idle_for(3))
    assert past_due[:2] == [False, True]


def test_schedules_stop_with_the_app() -> None:
    app = func.FunctionApp()
    runs: list[float] = []

    @app.timer_trigger(arg_name="timer", schedule=EVERY_SECOND)
    def tick(timer: func.TimerRequest) -> None:
        runs.append(time.time())

    served(app, idle_for(1.2))
    count = len(runs)
    assert count >= 1
    time.sleep(1.2)
    assert len(runs) == count


def test_listing_and_settings_in_schedules(monkeypatch: pytest.MonkeyPatch) -> None:
    app = func.FunctionApp()

    @app.timer_trigger(arg_name="timer", schedule="0 */5 * * * *", run_on_startup=True)
    def reconcile_incoming(timer: func.TimerRequest) -> None:
        raise AssertionError("not called")

    @app.timer_trigger(arg_name="timer", schedule="%TEST_SCHEDULE%")
    def configured(timer: func.TimerRequest) -> None:
        raise AssertionError("not called")

    monkeypatch.setenv("TEST_SCHEDULE", NEW_YEAR)
    listing = startup_listing(build_web_app(app), "http://localhost:7071").splitlines()
    assert "    reconcile_incoming: timerTrigger 0 */5 * * * *, and on startup" in listing
    monkeypatch.delenv("TEST_SCHEDULE")
    with pytest.raises(ValueError, match="configured: %TEST_SCHEDULE% does not resolve"):
        build_web_app(app)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("*/5 * * * *", "not an NCRONTAB expression of six fields"),
        ("0 */5 * * * * *", "not an NCRONTAB expression of six fields"),
        ("0 61 * * * *", "not an NCRONTAB expression of six fields"),
        ("00:05:00", "TimeSpan schedules"),
    ],
)
def test_schedules_that_are_not_six_field_ncrontab_are_refused(schedule: str, message: str) -> None:
    app = func.FunctionApp()

    @app.timer_trigger(arg_name="timer", schedule=schedule)
    def bad(timer: func.TimerRequest) -> None:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match=message):
        build_web_app(app)


def test_both_day_fields_must_match_as_in_ncrontab() -> None:
    app = func.FunctionApp()

    @app.timer_trigger(arg_name="timer", schedule="0 0 0 13 * 5")  # a Friday the 13th
    def friday_13th(timer: func.TimerRequest) -> None:
        raise AssertionError("not called")

    [function] = app_functions(app)
    timer = TimerFunction.from_app_function(function)
    # Unix cron would fire on Friday 2 January (either field matching).
    assert timer.next_occurrence(datetime(2026, 1, 1, tzinfo=UTC)) == datetime(
        2026, 2, 13, tzinfo=UTC
    )
