"""Logging for the local host's command lines."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging() -> None:
    """INFO to stderr, without the Azure SDK's log of every storage request and response."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    # Its INFO lines are whole request dumps, several per poll of the Event Grid stand-in.
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
