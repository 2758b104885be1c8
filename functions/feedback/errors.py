"""The feedback subsystem's errors. Which HTTP status each becomes is decided in
`functions/api/problems.py` alone; training skips the item and says why."""

from __future__ import annotations

from functions.errors import AppError


class FeedbackError(AppError):
    """A correction that cannot be taken."""


class InvalidItem(FeedbackError):
    """An item that breaks its contract (docs/contracts.md section 2a), as sent or as read back:
    the message names the field and what is wrong with it."""
