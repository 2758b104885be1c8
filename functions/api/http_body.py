"""What every body-reading endpoint checks of the HTTP message before it reads the body: the
media type it names and the Content-Encoding it was sent with."""

from __future__ import annotations

from functions.api.request_errors import CompressedBody

JSON_TYPES = ("application/json",)
IMAGE_TYPES = ("image/png", "image/jpeg", "image/jpg")
IDENTITY_ENCODINGS = ("", "identity")


def reject_compressed(content_encoding: str | None) -> None:
    """CompressedBody for a Content-Encoding other than identity: inflating is where a small
    body becomes a large one, and it is never done here."""
    if (content_encoding or "").strip().lower() not in IDENTITY_ENCODINGS:
        raise CompressedBody(
            "compressed bodies are not accepted; send the body uncompressed, without "
            "Content-Encoding"
        )


def media_type(content_type: str | None) -> str:
    """The Content-Type without its parameters, lower-case; "" when there is none."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    """`media` (from media_type) is JSON: application/json or any +json type."""
    return media in JSON_TYPES or media.endswith("+json")
