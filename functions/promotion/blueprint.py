"""The promotion functions: a blob trigger on the drop zone (Event Grid, the only blob trigger
source on the Flex Consumption plan), and a timer that reconciles what no event reached."""

from __future__ import annotations

import logging
from functools import cache

import azure.functions as func

from functions.promotion.gate import GatePolicy
from functions.promotion.gate_set import load_gate_set
from functions.promotion.promoter import Promoter
from functions.serving.model import load_model_file
from functions.serving.provider import BUNDLED_MODEL
from functions.settings import STORAGE_SETTING, settings
from functions.storage.clients import bounded_retries, container_client
from functions.storage.registry import INCOMING, ModelRegistry

RECONCILE_SCHEDULE = "0 */5 * * * *"  # every five minutes
log = logging.getLogger(__name__)

bp = func.Blueprint()


@cache
def promoter() -> Promoter:
    """Built on first use; a missing setting fails here with its name."""
    configured = settings()
    registry = ModelRegistry(container_client(configured, **bounded_retries()))
    registry.ensure_container()
    policy = GatePolicy(
        min_accuracy=configured.min_accuracy,
        max_regression=configured.max_regression,
        signing_key=configured.signing_key,
    )
    bundled = load_model_file(BUNDLED_MODEL, source="bundled")
    return Promoter(registry, policy, load_gate_set(), bundled)


@bp.blob_trigger(
    arg_name="blob",
    path=f"%MODELS_CONTAINER%/{INCOMING}{{name}}",
    connection=STORAGE_SETTING,
    source=func.BlobSource.EVENT_GRID,
)
def promote_model(blob: func.InputStream) -> None:
    # The promoter reads the blob itself, under a lease, with its metadata and ETag.
    name = incoming_name(blob.name, settings().container)
    if name is None:
        log.error(
            "a blob event outside %s/%s was ignored: %r", settings().container, INCOMING, blob.name
        )
        return
    decision = promoter().handle(name)  # which checks the name before any storage call
    if decision:
        log.info("incoming/%r: %s", name, decision.decision, extra={"decision": decision.record})


def incoming_name(blob_path: str, container: str) -> str | None:
    """<container>/incoming/<name> -> <name>, unchecked (the promoter records an invalid name as
    a rejection); None for a path that is not in this container's drop zone at all."""
    prefix = f"{container}/{INCOMING}"
    if not blob_path.startswith(prefix) or blob_path == prefix:
        return None
    return blob_path[len(prefix) :]


@bp.timer_trigger(arg_name="timer", schedule=RECONCILE_SCHEDULE, run_on_startup=False)
def reconcile_incoming(timer: func.TimerRequest) -> None:
    decisions = promoter().reconcile()
    if decisions:
        log.warning("reconciled %d file(s) that no event reached", len(decisions))
