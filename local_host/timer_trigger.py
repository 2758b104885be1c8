"""Timer triggers on their six-field NCRONTAB schedules (seconds first, UTC).

Runs of one function never overlap: a run that outlasts the next occurrence is followed at
once by one run with ``IsPastDue`` set, as the host does after a missed occurrence.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

from local_host.worker import Function, InvocationFailed, Worker, typed_json

TIMER_TRIGGER = "timerTrigger"


def resolve_setting_references(text: str) -> str:
    """Each ``%NAME%`` replaced with the app setting ``NAME``, refused unset as the host does."""
    if unset := [name for name in re.findall(r"%([^%]+)%", text) if not os.environ.get(name)]:
        raise ValueError(
            f"%{unset[0]}% does not resolve to a value: app setting {unset[0]} is not set"
        )
    return re.sub(r"%([^%]+)%", lambda reference: os.environ[reference.group(1)], text)


@dataclass(frozen=True)
class Timer:
    worker: Worker
    function: Function
    schedule: str

    @classmethod
    def of(cls, worker: Worker, function: Function) -> Timer:
        try:
            schedule = resolve_setting_references(function.trigger["schedule"])
        except ValueError as error:
            raise ValueError(f"{function.name}: {error}") from None
        if len(schedule.split()) != 6 or not croniter.is_valid(schedule, second_at_beginning=True):
            raise ValueError(
                f"{function.name}: {schedule!r} is not an NCRONTAB expression of six fields "
                "(second minute hour day month day-of-week), e.g. '0 */5 * * * *'; TimeSpan "
                "schedules are not supported locally"
            )
        return cls(worker, function, schedule)

    @property
    def listing_line(self) -> str:
        startup = ", and on startup" if self.function.trigger.get("runOnStartup") else ""
        return f"{self.function.name}: timerTrigger {self.function.trigger['schedule']}{startup}"

    def next_occurrence(self, after: datetime) -> datetime:
        # day_or=False: NCRONTAB needs both day fields to match, where Unix cron needs either.
        schedule = croniter(self.schedule, after, second_at_beginning=True, day_or=False)
        return schedule.get_next(datetime)

    async def run(self, reason: str, *, past_due: bool = False, last: datetime | None = None):
        """One invocation, with the status the host sends; a failure is logged and raised."""
        now = datetime.now(UTC)
        status = {
            "Schedule": {"AdjustForDST": True},
            "ScheduleStatus": {
                "Last": (last or now).isoformat(),
                "Next": self.next_occurrence(now).isoformat(),
                "LastUpdated": now.isoformat(),
            },
            "IsPastDue": past_due,
        }
        await self.worker.invoke(self.function, typed_json(status), reason)

    async def run_on_schedule(self) -> None:
        # A failed run is logged already; the schedule goes on, as in the host.
        if self.function.trigger.get("runOnStartup"):
            with contextlib.suppress(InvocationFailed):
                await self.run("Startup")
        due, past_due, last = self.next_occurrence(datetime.now(UTC)), False, None
        while True:
            await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
            with contextlib.suppress(InvocationFailed):
                await self.run("Timer fired", past_due=past_due, last=last)
            last, following, now = due, self.next_occurrence(due), datetime.now(UTC)
            # A run that outlasted the next occurrence missed it: run once more now, late.
            due, past_due = (now, True) if following <= now else (following, False)


def timers(worker: Worker) -> list[Timer]:
    return [Timer.of(worker, function) for function in worker.of_type(TIMER_TRIGGER)]
