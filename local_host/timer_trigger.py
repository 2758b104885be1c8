"""Run ``timerTrigger`` functions on their NCRONTAB schedules while the web app runs.

Schedules have six fields, seconds first (``0 */5 * * * *``), in UTC, as in Azure. Runs of
one function never overlap: a run that outlasts the next occurrence is followed at once by
one run with ``past_due`` set, as the host does after missing an occurrence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from azure.functions.timer import TimerRequest
from croniter import croniter

from local_host.admin import AdminInvoker, admin_invokers
from local_host.discovery import DiscoveredFunction, check_takes_only_the_trigger
from local_host.invocation import invoke_logged
from local_host.settings import resolve_setting_references

logger = logging.getLogger(__name__)

TIMER_TRIGGER = "timerTrigger"
NCRONTAB_FIELDS = 6


@dataclass(frozen=True)
class TimerFunction:
    """What a ``timerTrigger`` binding declares about one function."""

    name: str
    schedule: str
    run_on_startup: bool
    parameter: str
    user_function: Callable[..., Any]

    @classmethod
    def from_discovered(
        cls, function: DiscoveredFunction, environ: Mapping[str, str]
    ) -> TimerFunction:
        check_takes_only_the_trigger(function)
        trigger = function.trigger
        try:
            schedule = resolve_setting_references(trigger.schedule, environ)
        except ValueError as error:
            raise ValueError(f"{function.name}: {error}") from None
        _check_ncrontab(function.name, schedule)
        return cls(
            name=function.name,
            schedule=schedule,
            run_on_startup=bool(trigger.run_on_startup),
            parameter=trigger.name,
            user_function=function.user_function,
        )

    def next_occurrence(self, after: datetime) -> datetime:
        # day_or=False: NCRONTAB needs both day fields to match, where Unix cron needs either.
        return croniter(self.schedule, after, second_at_beginning=True, day_or=False).get_next(
            datetime
        )

    async def run(self, reason: str, *, past_due: bool, last: datetime | None = None) -> None:
        """One invocation; a failure is logged (with its traceback) and raised."""
        now = datetime.now(UTC)
        status = {
            "Last": (last or now).isoformat(),
            "Next": self.next_occurrence(now).isoformat(),
            "LastUpdated": now.isoformat(),
        }
        # The worker's concrete class; func.TimerRequest is only its abstract base.
        timer = TimerRequest(
            past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True}
        )
        await invoke_logged(self.name, reason, self.user_function, **{self.parameter: timer})


def _check_ncrontab(function_name: str, schedule: str) -> None:
    if ":" in schedule:
        raise ValueError(
            f"{function_name}: TimeSpan schedules ({schedule!r}) are not supported locally; "
            "use a six-field NCRONTAB expression"
        )
    fields = len(schedule.split())
    if fields != NCRONTAB_FIELDS or not croniter.is_valid(schedule, second_at_beginning=True):
        raise ValueError(
            f"{function_name}: {schedule!r} is not an NCRONTAB expression of six fields "
            "(second minute hour day month day-of-week), e.g. '0 */5 * * * *'"
        )


class TimerTriggerAdapter:
    """Starts each timer's schedule with the web app and stops it on cleanup."""

    trigger_type = TIMER_TRIGGER

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        self.environ = environ

    def attach(self, web_app: web.Application, functions: Sequence[DiscoveredFunction]) -> None:
        timers = [TimerFunction.from_discovered(f, self.environ) for f in functions]
        for timer in timers:
            admin_invokers(web_app)[timer.name] = _admin_invoker(timer)

        async def run_schedules(_: web.Application) -> AsyncIterator[None]:
            tasks = [
                asyncio.create_task(_run_on_schedule(timer), name=f"timer {timer.name}")
                for timer in timers
            ]
            yield
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        web_app.cleanup_ctx.append(run_schedules)

    def describe(self, function: DiscoveredFunction, base_url: str) -> str:
        trigger = function.trigger
        startup = ", and on startup" if trigger.run_on_startup else ""
        return f"{function.name}: timerTrigger {trigger.schedule}{startup}"


async def _run_on_schedule(timer: TimerFunction) -> None:
    if timer.run_on_startup:
        await _run_and_carry_on(timer, "Startup", past_due=False, last=None)
    due = timer.next_occurrence(datetime.now(UTC))
    past_due = False
    last: datetime | None = None
    while True:
        await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
        await _run_and_carry_on(timer, "Timer fired", past_due=past_due, last=last)
        last = due
        following = timer.next_occurrence(due)
        now = datetime.now(UTC)
        # A run that outlasted the next occurrence missed it: run once more now, late.
        due, past_due = (now, True) if following <= now else (following, False)


async def _run_and_carry_on(
    timer: TimerFunction, reason: str, *, past_due: bool, last: datetime | None
) -> None:
    # A failed run is already logged; the schedule goes on, as in the host.
    with contextlib.suppress(Exception):
        await timer.run(reason, past_due=past_due, last=last)


def _admin_invoker(timer: TimerFunction) -> AdminInvoker:
    async def run_once(_input: str) -> None:
        await timer.run("Admin request", past_due=False)

    return run_once
