"""The test app with a timer that runs at start-up and prints the process it ran in."""

import os

import azure.functions as func

from tests.local_host_test_app import app


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True)
def say_where(timer: func.TimerRequest) -> None:
    print(f"timer ran in {os.getpid()}", flush=True)
