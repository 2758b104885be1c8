"""The errors serving raises on purpose about a request or about what it can serve. Each says
what went wrong in words a client may read; which HTTP status and headers it becomes is decided
in `functions/api/problems.py` alone."""

from __future__ import annotations


class AppError(Exception):
    """The base of every subsystem's error family (serving, the model contract, promotion,
    storage, feedback): `detail` says what went wrong in words a client may read."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ServingError(AppError):
    """What serving raises about a request or about what it can serve."""


class InvalidInput(ServingError):
    """The request cannot be read as images: the client's to fix."""


class InputTooLarge(ServingError):
    """The body or the picture is over a limit that bounds time and memory."""


class UnsupportedContent(ServingError):
    """The body is of a kind that is not read at all."""


class CompressedBody(UnsupportedContent):
    """A Content-Encoding other than identity: inflating is where a small body becomes large."""


class NoModelAvailable(ServingError):
    """Not even the bundled model can be served."""


class UnknownModel(ServingError):
    """The request names a model or a version that this server does not serve."""


class InferenceBusy(ServingError):
    """Every inference thread is taken and the line waiting for one is full: no fault of the
    request, try again (a flood queues no further than that, holding its bodies)."""


class DecodersBusy(RuntimeError):
    """Every picture decoding slot stayed taken for `preprocessing.DECODE_SLOT_WAIT_SECONDS`:
    no fault of the request, try again. Here rather than in preprocessing.py, so that the table
    of statuses knows it without loading Pillow."""
