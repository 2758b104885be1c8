"""The promotion functions: an Event Grid trigger on the drop zone's BlobCreated events, and a
timer that reconciles what no event reached.

An Event Grid trigger, not a blob trigger: the event names the blob, and the promoter reads it
itself, under a lease and bounded in size, after checking the name. A blob trigger would have the
host download the whole dropped file first, whatever its size.

Both are declared `async def`: each waits for its turn on the event loop, holding no thread, and
then runs the promoter in the one-thread promotion pool (functions/pools.py): one trial at a
time, and never a thread of the runtime's pool or of the pools predictions and feedback use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import azure.functions as func

from functions.composition import Services
from functions.pools import invocation
from functions.storage.registry import INCOMING

RECONCILE_SCHEDULE = "0 */5 * * * *"  # every five minutes
BLOB_CREATED = "Microsoft.Storage.BlobCreated"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromotionFunctions:
    """The two handlers, plain: what tests call, and what the blueprint runs in the promotion
    pool, one at a time, from the `async def` functions it declares."""

    promote_model: Callable[[func.EventGridEvent], None]
    reconcile_incoming: Callable[[func.TimerRequest], None]


def promotion_functions(services: Services) -> PromotionFunctions:
    def promote_model(event: func.EventGridEvent) -> None:
        container = services.settings().container
        name = incoming_name(event.subject, container)
        if event.event_type != BLOB_CREATED or name is None:
            log.error(
                "an event other than BlobCreated in %s/%s was ignored: %s %r",
                container,
                INCOMING,
                event.event_type,
                event.subject,
            )
            return
        decision = services.promoter().handle(name)  # which checks the name before any call
        if decision:
            log.info(
                "incoming/%r: %s", name, decision.decision, extra={"decision": decision.record}
            )

    def reconcile_incoming(timer: func.TimerRequest) -> None:
        decisions = services.promoter().reconcile()
        if decisions:
            log.warning("reconciled %d file(s) that no event reached", len(decisions))

    return PromotionFunctions(promote_model=promote_model, reconcile_incoming=reconcile_incoming)


def promotion_blueprint(services: Services) -> func.Blueprint:
    functions = promotion_functions(services)
    in_turn = services.pools.promotion

    async def promote_model(event: func.EventGridEvent, context: func.Context) -> None:
        with invocation(context):
            await in_turn.run(functions.promote_model, event)

    async def reconcile_incoming(timer: func.TimerRequest, context: func.Context) -> None:
        with invocation(context):
            await in_turn.run(functions.reconcile_incoming, timer)

    bp = func.Blueprint()
    bp.event_grid_trigger(arg_name="event")(promote_model)
    bp.timer_trigger(arg_name="timer", schedule=RECONCILE_SCHEDULE, run_on_startup=False)(
        reconcile_incoming
    )
    return bp


def blob_subject(container: str, name: str) -> str:
    """A storage event's subject for a blob (and, for a folder's name, its prefix)."""
    return f"/blobServices/default/containers/{container}/blobs/{name}"


def incoming_name(subject: str, container: str) -> str | None:
    """A storage event's subject (/blobServices/default/containers/<container>/blobs/incoming/
    <name>) -> <name>, unchecked (the promoter records an invalid name as a rejection); None for
    a blob that is not in this container's drop zone at all."""
    prefix = blob_subject(container, INCOMING)
    if not subject.startswith(prefix) or subject == prefix:
        return None
    return subject[len(prefix) :]
