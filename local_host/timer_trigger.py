"""Run ``timerTrigger`` functions on their six-field NCRONTAB schedules (seconds first, UTC).

Runs of one function never overlap: a run that outlasts the next occurrence is followed at
once by one run with ``past_due`` set, as the host does after a missed occurrence.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from azure.functions.timer import TimerRequest
from croniter import croniter

from local_host.app_functions import AppFunction, resolve_setting_references

TIMER_TRIGGER = "timerTrigger"


@dataclass(frozen=True)
class TimerFunction:
    function: AppFunction
    schedule: str
    run_on_startup: bool

    @property
    def listing_line(self) -> str:
        startup = ", and on startup" if self.run_on_startup else ""
        return f"{self.function.name}: timerTrigger {self.function.trigger.schedule}{startup}"

    @classmethod
    def from_app_function(cls, function: AppFunction) -> TimerFunction:
        function.check_takes_only_the_trigger()
        try:
            schedule = resolve_setting_references(function.trigger.schedule)
        except ValueError as error:
            raise ValueError(f"{function.name}: {error}") from None
        if len(schedule.split()) != 6 or not croniter.is_valid(schedule, second_at_beginning=True):
            raise ValueError(
                f"{function.name}: {schedule!r} is not an NCRONTAB expression of six fields "
                "(second minute hour day month day-of-week), e.g. '0 */5 * * * *'; TimeSpan "
                "schedules are not supported locally"
            )
        return cls(function, schedule, bool(function.trigger.run_on_startup))

    def next_occurrence(self, after: datetime) -> datetime:
        # day_or=False: NCRONTAB needs both day fields to match, where Unix cron needs either.
        return croniter(self.schedule, after, second_at_beginning=True, day_or=False).get_next(
            datetime
        )

    async def run(
        self, reason: str, *, past_due: bool = False, last: datetime | None = None
    ) -> None:
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
        await self.function.invoke_logged(reason, timer)

    async def run_on_schedule(self) -> None:
        # A failed run is logged already; the schedule goes on, as in the host.
        if self.run_on_startup:
            with contextlib.suppress(Exception):
                await self.run("Startup")
        due, past_due, last = self.next_occurrence(datetime.now(UTC)), False, None
        while True:
            await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
            with contextlib.suppress(Exception):
                await self.run("Timer fired", past_due=past_due, last=last)
            last, following, now = due, self.next_occurrence(due), datetime.now(UTC)
            # A run that outlasted the next occurrence missed it: run once more now, late.
            due, past_due = (now, True) if following <= now else (following, False)


def timer_functions(functions: Sequence[AppFunction]) -> list[TimerFunction]:
    return [TimerFunction.from_app_function(function) for function in functions]
