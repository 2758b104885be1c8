"""Timers that fail or outlast their schedule, for the local host's tests; each run is recorded
in ``RUNS``, which tests read through ``sys.modules["function_app"]``."""

import asyncio
import time

import azure.functions as func

EVERY_SECOND = "*/1 * * * * *"

# (function, time.time() of the run, the timer it was given)
RUNS: list[tuple[str, float, func.TimerRequest]] = []

app = func.FunctionApp()


@app.timer_trigger(arg_name="timer", schedule=EVERY_SECOND)
def fails(timer: func.TimerRequest) -> None:
    RUNS.append(("fails", time.time(), timer))
    raise RuntimeError("timer failure")


@app.timer_trigger(arg_name="timer", schedule=EVERY_SECOND)
async def slow(timer: func.TimerRequest) -> None:
    RUNS.append(("slow", time.time(), timer))
    await asyncio.sleep(1.5)  # past the next occurrence
