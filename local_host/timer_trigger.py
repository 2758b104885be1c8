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
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from azure.functions.timer import TimerRequest
from croniter import croniter

from local_host.app_functions import (
    AppFunction,
    check_takes_only_the_trigger,
    invoke_logged,
    resolve_setting_references,
)
from local_host.control_calls import AdminInvoker, admin_invokers

logger = logging.getLogger(__name__)

TIMER_TRIGGER = "timerTrigger"
NCRONTAB_FIELDS = 6


@dataclass(frozen=True)
class TimerFunction:
    """What a ``timerTrigger`` binding declares about one function."""

    function: AppFunction
    schedule: str
    run_on_startup: bool

    @classmethod
    def from_app_function(
        cls, function: AppFunction, environ: Mapping[str, str] = os.environ
    ) -> TimerFunction:
        check_takes_only_the_trigger(function)
        try:
            schedule = resolve_setting_references(function.trigger.schedule, environ)
        except ValueError as error:
            raise ValueError(f"{function.name}: {error}") from None
        _check_ncrontab(function.name, schedule)
        return cls(function, schedule, bool(function.trigger.run_on_startup))

    def next_occurrence(self, after: datetime) -> datetime:
        # day_or=False: NCRONTAB needs both day fields to match, where Unix cron needs either.
        schedule = croniter(self.schedule, after, second_at_beginning=True, day_or=False)
        return schedule.get_next(datetime)

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
        await invoke_logged(self.function, reason, **{self.function.trigger.name: timer})

    async def run_on_schedule(self) -> None:
        if self.run_on_startup:
            await self._run_and_carry_on("Startup", past_due=False, last=None)
        due = self.next_occurrence(datetime.now(UTC))
        past_due = False
        last: datetime | None = None
        while True:
            await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
            await self._run_and_carry_on("Timer fired", past_due=past_due, last=last)
            last = due
            following = self.next_occurrence(due)
            now = datetime.now(UTC)
            # A run that outlasted the next occurrence missed it: run once more now, late.
            due, past_due = (now, True) if following <= now else (following, False)

    async def _run_and_carry_on(
        self, reason: str, *, past_due: bool, last: datetime | None
    ) -> None:
        # A failed run is already logged; the schedule goes on, as in the host.
        with contextlib.suppress(Exception):
            await self.run(reason, past_due=past_due, last=last)


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


def attach_timers(web_app: web.Application, functions: Sequence[AppFunction]) -> list[str]:
    """Start each schedule with the web app, stop it on cleanup; return the listing lines."""
    timers = [TimerFunction.from_app_function(function) for function in functions]
    for timer in timers:
        admin_invokers(web_app)[timer.function.name] = _admin_invoker(timer)

    async def run_schedules(_: web.Application) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(timer.run_on_schedule(), name=f"timer {timer.function.name}")
            for timer in timers
        ]
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    web_app.cleanup_ctx.append(run_schedules)
    return [
        f"{timer.function.name}: timerTrigger {timer.function.trigger.schedule}"
        + (", and on startup" if timer.run_on_startup else "")
        for timer in timers
    ]


def _admin_invoker(timer: TimerFunction) -> AdminInvoker:
    async def run_once(_input: str) -> None:
        await timer.run("Admin request", past_due=False)

    return run_once
