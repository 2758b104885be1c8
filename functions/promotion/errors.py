"""The promotion subsystem's errors. A dropped model is refused with one type, `Refusal`, from
whichever stage refuses it (the trial's child process included): it says which check refused and
why, and the promoter records exactly that (audit line and rejected/<version>.json). Promotion
answers no HTTP request; nothing here has a status."""

from __future__ import annotations

from functions.errors import AppError


class PromotionError(AppError):
    """What promotion raises about a dropped model."""


class Refusal(PromotionError):
    """A stage refused the candidate: `check` names the check (contracts.md section 2's
    rejection records: "name", "size", "integrity", the trial's checks, "accuracy",
    "regression", "immutable", "undecided"), `reason` says why in words a person can act on."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"{check}: {reason}")
        self.check, self.reason = check, reason
