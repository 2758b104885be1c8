"""The promotion functions' bindings: an Event Grid trigger on the drop zone's BlobCreated events
(`promote_model`), and a timer that reconciles what no event reached (`reconcile_incoming`). The
handlers themselves are in handlers.py.

An Event Grid trigger, not a blob trigger: the event names the blob, and the promoter reads it
itself, under a lease and bounded in size, after checking the name. A blob trigger would have the
host download the whole dropped file first, whatever its size.

Both are declared `async def`: each waits for its turn on the event loop, holding no thread, and
then runs its handler in the one-thread promotion pool (functions/pools.py): one trial at a
time, and never a thread of the runtime's pool or of the pools predictions and feedback use.
"""

from __future__ import annotations

import azure.functions as func

from functions.composition import Services
from functions.pools import invocation
from functions.promotion import handlers

RECONCILE_SCHEDULE = "0 */5 * * * *"  # every five minutes


def promotion_blueprint(services: Services) -> func.Blueprint:
    bp = func.Blueprint()
    in_turn = services.pools.promotion

    @bp.function_name("promote_model")
    @bp.event_grid_trigger(arg_name="event")
    async def on_event(event: func.EventGridEvent, context: func.Context) -> None:
        with invocation(context):
            await in_turn.run(handlers.promote_model, event, services)

    @bp.function_name("reconcile_incoming")
    @bp.timer_trigger(arg_name="timer", schedule=RECONCILE_SCHEDULE, run_on_startup=False)
    async def on_timer(timer: func.TimerRequest, context: func.Context) -> None:
        with invocation(context):
            await in_turn.run(handlers.reconcile_incoming, timer, services)

    return bp
