"""What is wrong with a request's body: the errors of the codecs (`/api/predict`, V2 infer,
`/api/feedback`) and of the checks they share, each in words that say what to fix. Their HTTP
status is decided in `functions/api/problems.py`."""

from __future__ import annotations

from functions.errors import AppError


class RequestError(AppError):
    """The request cannot be used as sent: the client's to fix."""


class InvalidInput(RequestError):
    """The body cannot be read as what the endpoint takes (images, a correction)."""


class InputTooLarge(RequestError):
    """The body or the picture is over a limit that bounds time and memory."""


class UnsupportedContent(RequestError):
    """The body is of a kind that is not read at all."""


class CompressedBody(UnsupportedContent):
    """A Content-Encoding other than identity: inflating is where a small body becomes large."""
