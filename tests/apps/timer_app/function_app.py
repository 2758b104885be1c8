"""Timers for the local host's tests; each run is recorded in ``RUNS``, which tests read through
``sys.modules["function_app"]`` once the host has indexed the app.

``TEST_TIMER_SCHEDULE`` (an app setting) is the schedule of ``configured``.
"""

import time

import azure.functions as func

EVERY_SECOND = "*/1 * * * * *"
NEW_YEAR = "0 0 0 1 1 *"  # never fires during a test

# (function, time.time() of the run, the timer it was given)
RUNS: list[tuple[str, float, func.TimerRequest]] = []

app = func.FunctionApp()


@app.timer_trigger(arg_name="timer", schedule=EVERY_SECOND)
def tick(timer: func.TimerRequest) -> None:
    RUNS.append(("tick", time.time(), timer))


@app.timer_trigger(arg_name="timer", schedule=NEW_YEAR, run_on_startup=True)
async def reconcile(timer: func.TimerRequest) -> None:
    RUNS.append(("reconcile", time.time(), timer))


@app.timer_trigger(arg_name="timer", schedule="%TEST_TIMER_SCHEDULE%")
def configured(timer: func.TimerRequest) -> None:
    RUNS.append(("configured", time.time(), timer))


@app.timer_trigger(arg_name="timer", schedule="0 0 0 13 * 5")  # a Friday the 13th
def friday_13th(timer: func.TimerRequest) -> None:
    RUNS.append(("friday_13th", time.time(), timer))
