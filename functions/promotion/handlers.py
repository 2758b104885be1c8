"""The promotion functions' handlers, plain: what the blueprint runs (in the promotion pool, one
at a time) and what tests call. `promote_model` takes an Event Grid event naming a dropped file;
`reconcile_incoming` decides on what no event reached. Both hand the drop to the promoter."""

from __future__ import annotations

import logging

import azure.functions as func

from functions.composition import Services
from functions.storage.registry import INCOMING

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
log = logging.getLogger(__name__)


def promote_model(event: func.EventGridEvent, services: Services) -> None:
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
        log.info("incoming/%r: %s", name, decision.decision, extra={"decision": decision.record})


def reconcile_incoming(timer: func.TimerRequest | None, services: Services) -> None:
    decisions = services.promoter().reconcile()
    if decisions:
        log.warning("reconciled %d file(s) that no event reached", len(decisions))


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
