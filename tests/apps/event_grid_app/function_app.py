"""The local host's Event Grid test app: triggers that record what they got, and one that fails.

``TEST_RECORD_FILE`` (set by the tests) names the file where each call appends one JSON line
saying what the function got, so that tests read it whether the host runs in-process or as
another process.
"""

import json
import os

import azure.functions as func

app = func.FunctionApp()


@app.event_grid_trigger(arg_name="event")
def record_event(event: func.EventGridEvent) -> None:
    record = {
        "is_event": isinstance(event, func.EventGridEvent),
        "id": event.id,
        "topic": event.topic,
        "subject": event.subject,
        "event_type": event.event_type,
        "event_time": event.event_time.isoformat() if event.event_time else None,
        "data_version": event.data_version,
        "data": event.get_json(),
    }
    with open(os.environ["TEST_RECORD_FILE"], "a", encoding="utf-8") as record_file:
        record_file.write(json.dumps(record) + "\n")


@app.event_grid_trigger(arg_name="event")
async def reject_event(event: func.EventGridEvent) -> None:
    raise RuntimeError(f"cannot take {event.subject}")
