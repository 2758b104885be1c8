"""The promotion functions: a blob trigger on the drop zone (Event Grid, the only blob trigger
source on the Flex Consumption plan), and a timer that reconciles what no event reached."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import azure.functions as func

from functions.composition import Services
from functions.settings import STORAGE_SETTING
from functions.storage.registry import INCOMING

RECONCILE_SCHEDULE = "0 */5 * * * *"  # every five minutes
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromotionFunctions:
    """The two handlers: what the blueprint declares, and what tests call."""

    promote_model: Callable[[func.InputStream], None]
    reconcile_incoming: Callable[[func.TimerRequest], None]


def promotion_functions(services: Services) -> PromotionFunctions:
    def promote_model(blob: func.InputStream) -> None:
        # The promoter reads the blob itself, under a lease, with its metadata and ETag.
        container = services.settings().container
        name = incoming_name(blob.name, container)
        if name is None:
            log.error("a blob event outside %s/%s was ignored: %r", container, INCOMING, blob.name)
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
    bp = func.Blueprint()
    bp.blob_trigger(
        arg_name="blob",
        path=f"%MODELS_CONTAINER%/{INCOMING}{{name}}",
        connection=STORAGE_SETTING,
        source=func.BlobSource.EVENT_GRID,
    )(functions.promote_model)
    bp.timer_trigger(arg_name="timer", schedule=RECONCILE_SCHEDULE, run_on_startup=False)(
        functions.reconcile_incoming
    )
    return bp


def incoming_name(blob_path: str, container: str) -> str | None:
    """<container>/incoming/<name> -> <name>, unchecked (the promoter records an invalid name as
    a rejection); None for a path that is not in this container's drop zone at all."""
    prefix = f"{container}/{INCOMING}"
    if not blob_path.startswith(prefix) or blob_path == prefix:
        return None
    return blob_path[len(prefix) :]
