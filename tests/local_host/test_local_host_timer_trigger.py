"""The local host's timer trigger: NCRONTAB schedules, startup runs, failures, past-due runs."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from local_host.server import host_app, startup_listing
from local_host.timer_trigger import Timer, timers
from local_host.worker import SCRIPT_MODULE, Worker
from tests.stack import REPO_ROOT

APPS = REPO_ROOT / "tests" / "apps"
# tick (every second), reconcile (at new year, and on startup), configured (the schedule
# %TEST_TIMER_SCHEDULE%) and friday_13th.
TIMER_APP = APPS / "timer_app"
# fails (every second, raising) and slow (every second, running 1.5 s).
TIMER_FAILURES_APP = APPS / "timer_failures_app"
NEW_YEAR = "0 0 0 1 1 *"  # never fires during a test


@pytest.fixture(autouse=True)
def _each_test_restores_imports(restored_imports: None) -> None:
    """Each test here hosts an app (tests/conftest.py puts the repository's own back)."""


@pytest.fixture(autouse=True)
def configured_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TIMER_SCHEDULE", NEW_YEAR)


def served_for(folder: Path, seconds: float) -> list[tuple[str, float, Any]]:
    """Host the app in ``folder`` for ``seconds``; return the runs its functions recorded."""

    async def run() -> list[tuple[str, float, Any]]:
        async with TestClient(TestServer(await host_app(folder))):
            await asyncio.sleep(seconds)
        return sys.modules[SCRIPT_MODULE].RUNS

    return asyncio.run(run())


def runs_of(runs: list[tuple[str, float, Any]], name: str) -> list[tuple[float, Any]]:
    return [(at, timer) for function, at, timer in runs if function == name]


def test_a_timer_runs_on_its_schedule_with_a_timer_request() -> None:
    ticks = runs_of(served_for(TIMER_APP, 3.3), "tick")
    assert 3 <= len(ticks) <= 4
    times = [at for at, _ in ticks]
    # On whole seconds, a second apart.
    assert all(abs(at - round(at)) < 0.3 for at in times)
    assert all(0.7 < later - earlier < 1.3 for earlier, later in itertools.pairwise(times))
    timer = ticks[0][1]
    assert timer.past_due is False
    assert datetime.fromisoformat(timer.schedule_status["Next"]) > datetime.fromtimestamp(
        times[0], UTC
    )


def test_run_on_startup() -> None:
    runs = served_for(TIMER_APP, 0.3)
    assert len(runs_of(runs, "reconcile")) == 1
    assert runs_of(runs, "configured") == runs_of(runs, "friday_13th") == []


def test_a_failing_timer_is_logged_and_keeps_its_schedule(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="local_host"):
        attempts = runs_of(served_for(TIMER_FAILURES_APP, 2.3), "fails")
    assert len(attempts) >= 2  # the schedule went on after the first failure
    failures = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and "'Functions.fails'" in r.getMessage()
    ]
    assert len(failures) == len(attempts)
    assert all(message.startswith("Executed 'Functions.fails' (Failed") for message in failures)
    assert all("RuntimeError: timer failure" in message for message in failures)


def test_a_run_that_outlasts_the_next_occurrence_is_followed_by_a_past_due_run() -> None:
    # The first run starts within a second and the second 1.5 s after it.
    slow_runs = runs_of(served_for(TIMER_FAILURES_APP, 3), "slow")
    assert [timer.past_due for _, timer in slow_runs[:2]] == [False, True]


def test_schedules_stop_with_the_app() -> None:
    runs = served_for(TIMER_APP, 1.2)
    count = len(runs_of(runs, "tick"))
    assert count >= 1
    time.sleep(1.2)
    assert len(runs_of(runs, "tick")) == count


def test_listing_and_settings_in_schedules(monkeypatch: pytest.MonkeyPatch) -> None:
    listing = startup_listing(asyncio.run(host_app(TIMER_APP)), "http://localhost:7071")
    lines = listing.splitlines()
    assert "    reconcile: timerTrigger 0 0 0 1 1 *, and on startup" in lines
    assert "    tick: timerTrigger */1 * * * * *" in lines
    assert "    configured: timerTrigger %TEST_TIMER_SCHEDULE%" in lines
    monkeypatch.delenv("TEST_TIMER_SCHEDULE")
    with pytest.raises(ValueError, match="configured: %TEST_TIMER_SCHEDULE% does not resolve"):
        asyncio.run(host_app(TIMER_APP))


def indexed_timer(name: str, schedule: str | None = None) -> Timer:
    """The timer of the function ``name`` of the timer app, with its schedule replaced by
    ``schedule`` (which the host checks, not the runtime)."""
    worker = asyncio.run(Worker.start(TIMER_APP))
    [function] = [f for f in worker.functions if f.name == name]
    if schedule is not None:
        bindings = tuple(
            {**binding, "schedule": schedule} if binding is function.trigger else binding
            for binding in function.bindings
        )
        function = dataclasses.replace(function, bindings=bindings)
    return Timer.of(worker, function)


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
    with pytest.raises(ValueError, match=rf"tick: {re.escape(repr(schedule))} is .*{message}"):
        indexed_timer("tick", schedule)


def test_schedules_that_are_not_six_field_ncrontab_refuse_the_app(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(
        "import azure.functions as func\n\n"
        "app = func.FunctionApp()\n\n\n"
        '@app.timer_trigger(arg_name="timer", schedule="*/5 * * * *")\n'
        "def every_five_minutes(timer: func.TimerRequest) -> None:\n"
        "    pass\n"
    )
    with pytest.raises(ValueError, match=r"every_five_minutes: .* not an NCRONTAB expression"):
        asyncio.run(host_app(tmp_path))


def test_both_day_fields_must_match_as_in_ncrontab() -> None:
    timer = indexed_timer("friday_13th")  # 0 0 0 13 * 5
    # Unix cron would fire on Friday 2 January (either field matching).
    assert timer.next_occurrence(datetime(2026, 1, 1, tzinfo=UTC)) == datetime(
        2026, 2, 13, tzinfo=UTC
    )


def test_timers_are_those_of_the_timer_triggers() -> None:
    worker = asyncio.run(Worker.start(TIMER_APP))
    assert sorted(timer.function.name for timer in timers(worker)) == [
        "configured",
        "friday_13th",
        "reconcile",
        "tick",
    ]
    assert {timer.function.name: timer.schedule for timer in timers(worker)}["configured"] == (
        NEW_YEAR
    )
