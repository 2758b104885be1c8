"""Serving's errors: what it cannot serve, and work it has no room for. Each says what went wrong
in words a client may read; its HTTP status is decided in `functions/api/problems.py`."""

from __future__ import annotations

from functions.errors import AppError


class ServingError(AppError):
    """What serving raises about what it can serve, or about having no room for more work."""


class NoModelAvailable(ServingError):
    """Not even the bundled model can be served."""


class UnknownModel(ServingError):
    """The request names a model or a version that this server does not serve."""


class InferenceBusy(ServingError):
    """Every inference thread is taken and the line waiting for one is full: no fault of the
    request, try again (a flood queues no further than that, holding its bodies)."""


class DecodersBusy(ServingError):
    """Every picture decoding slot stayed taken for `DECODE_SLOT_WAIT_SECONDS`
    (functions/preprocessing/pictures.py): no fault of the request, try again. Here rather than
    there, so that the table of statuses knows it without loading Pillow."""
