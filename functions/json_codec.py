"""JSON in and out, with orjson (what it buys over the standard library: docs/benchmarks.md,
"Speed tricks in the handler"). Parse errors become InvalidInput in words a client can act on."""

from __future__ import annotations

import orjson

from functions.api.request_errors import InvalidInput

# Not JSON, but what a Python or JavaScript client writes for a float it should not send.
NOT_NUMBERS = (b"NaN", b"Infinity", b"-Infinity")


def parse_json(body: bytes | memoryview) -> object:
    """The document in `body` (UTF-8 JSON); InvalidInput that says what is wrong with it."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(_reason(bytes(body[error.pos : error.pos + 9]), error)) from error


def to_json(document: object) -> bytes:
    """Compact JSON; numpy arrays and scalars written as their values."""
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)


def _reason(at: bytes, error: orjson.JSONDecodeError) -> str:
    for constant in NOT_NUMBERS:
        if at.startswith(constant):
            name = constant.decode()
            return f"{name} is not a pixel value; every pixel must be a number 0..255"
    if error.msg.startswith("number is infinity"):  # 1e999, or an integer of 400 digits
        return "the body holds a number far outside 0..255 (too long, or infinite as a float)"
    if error.msg.startswith("depth limit"):
        return "the JSON is nested too deeply; images are at most 3 levels"
    if "UTF-8" in error.msg:
        return "the body is not UTF-8 text"
    return f"the body is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
