"""The storage subsystem's errors: what the registry and the feedback store raise about storage
itself. Which HTTP status each becomes is decided in `functions/api/problems.py` alone."""

from __future__ import annotations

from functions.errors import AppError


class StorageError(AppError):
    """Storage refused or could not do what was asked."""


class StorageUnavailable(StorageError):
    """Storage did not take what the request asked to store: no fault of the request, and
    nothing was stored."""


class PointerConflict(StorageError):
    """current.json changed between reading and writing it."""


class VersionConflict(StorageError):
    """versions/<version>.onnx exists with different content; versions are immutable."""


class IncomingBeingDecided(StorageError):
    """incoming/<version>.onnx is leased: the promoter is deciding on it right now."""


class InvalidName(StorageError):
    """A name that is no valid version (or `<version>.onnx` in the drop zone): it never becomes
    part of a blob path, so a crafted name cannot reach outside its folder."""
