"""An Open Inference Protocol (KServe V2) infer request, read into the model's input batch: a
JSON header (`inputs`, `outputs`, `id`, `parameters`), optionally followed by the raw bytes of
the binary tensor data extension (`Inference-Header-Content-Length` says where the JSON ends,
each input's `binary_data_size` how many bytes are its own). Pure: no Functions host needed.

Everything a stranger sends is checked before it is used: the body's size, the header length
against the body, every `binary_data_size` against the bytes that are really there, and the
shape (at most MAX_BATCH images) before anything is allocated for it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from itertools import chain

import numpy as np

from functions.api.http_body import reject_compressed
from functions.api.pixels import PIXELS, checked_pixels, json_pixels, no_booleans, uint8_values
from functions.api.request_errors import InputTooLarge, InvalidInput
from functions.api.v2_model import OUTPUT_DATATYPES
from functions.json_codec import parse_json
from functions.model_contract import INPUT_NAME, INPUT_SHAPE, MAX_BATCH, OUTPUT_NAME

# JSON numbers for a full batch: 200,704 of them, up to about 20 characters each as floats.
MAX_HEADER_BYTES = 8 * 1024 * 1024
DATATYPES = {"FP32": np.dtype("<f4"), "UINT8": np.dtype("u1")}  # the protocol's little-endian
MAX_BINARY_BYTES = MAX_BATCH * PIXELS * DATATYPES["FP32"].itemsize
MAX_BODY_BYTES = MAX_HEADER_BYTES + MAX_BINARY_BYTES
IMAGE_SHAPES = (list(INPUT_SHAPE), [28, 28], [PIXELS])  # after the batch dimension
SHAPES_HINT = "[N, 28, 28, 1], [N, 28, 28] or [N, 784] with N from 1 to 256"
OUTPUTS = tuple(OUTPUT_DATATYPES)
MAX_ID_CHARS = 256
# The request's parameters are echoed in the response: at most 64, each name at most 64
# characters and each string value at most 256: at most about 20,000 characters echoed (about
# 120 KiB as JSON, were every one escaped as \u00XX).
MAX_PARAMETERS = 64
MAX_PARAMETER_NAME_CHARS = 64
MAX_PARAMETER_VALUE_CHARS = 256
# Where the JSON header ends, in a request or a response with binary tensors after it.
LENGTH_HEADER = "Inference-Header-Content-Length"
HEADER_LENGTH = re.compile(r"[0-9]{1,10}")
REQUEST_FIELDS = {"id", "parameters", "inputs", "outputs"}
INPUT_FIELDS = {"name", "shape", "datatype", "parameters", "data"}
OUTPUT_FIELDS = {"name", "parameters"}


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool  # answered as raw bytes after the JSON header rather than in "data"


@dataclass(frozen=True)
class InferRequest:
    images: np.ndarray  # (n, 28, 28, 1) float32, 0..255, MNIST polarity
    outputs: tuple[RequestedOutput, ...]
    id: str | None
    parameters: dict[str, object] | None


def parse_infer_request(
    body: bytes, header_length: str | None, content_encoding: str | None = None
) -> InferRequest:
    """`header_length` is the Inference-Header-Content-Length header (None: all JSON).
    Raises InvalidInput, InputTooLarge or CompressedBody with a message for the client."""
    reject_compressed(content_encoding)
    if len(body) > MAX_BODY_BYTES:
        raise InputTooLarge(f"the body is over the limit of {MAX_BODY_BYTES} bytes")
    header_end = _header_end(header_length, len(body))
    if header_end > MAX_HEADER_BYTES:
        raise InputTooLarge(f"the JSON header is over the limit of {MAX_HEADER_BYTES} bytes")
    view = memoryview(body)
    header = _header(view[:header_end])
    parameters = _parameters(header.get("parameters"), "the request's parameters")
    exact = no_booleans(body, header_end)
    return InferRequest(
        images=_pixels(header.get("inputs"), view[header_end:], exact),
        outputs=_outputs(header.get("outputs"), _binary_default(parameters)),
        id=_request_id(header.get("id")),
        parameters=parameters,
    )


def _header_end(header_length: str | None, body_size: int) -> int:
    if header_length is None:
        return body_size
    text = header_length.strip()
    if not HEADER_LENGTH.fullmatch(text):
        raise InvalidInput("Inference-Header-Content-Length must be a whole number of bytes")
    length = int(text)
    if not 0 < length <= body_size:
        raise InvalidInput(
            f"Inference-Header-Content-Length is {length}, but the body has {body_size} bytes"
        )
    return length


def _header(json_bytes: memoryview) -> dict:
    if not bytes(json_bytes[:64]).strip():
        raise InvalidInput('the body is empty; send {"inputs": [{"name": "pixels", ...}]}')
    header = parse_json(json_bytes)
    if not isinstance(header, dict):
        raise InvalidInput("the inference request must be a JSON object")
    _refuse_unknown(header, REQUEST_FIELDS, "the inference request")
    return header


def _pixels(inputs, binary: memoryview, exact: bool) -> np.ndarray:
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InvalidInput(f'"inputs" must hold one tensor, named "{INPUT_NAME}"')
    tensor = inputs[0]
    _refuse_unknown(tensor, INPUT_FIELDS, "the input tensor")
    if tensor.get("name") != INPUT_NAME:
        raise InvalidInput(f'the model has one input, named "{INPUT_NAME}"')
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise InvalidInput(f"{INPUT_NAME} must have datatype FP32 or UINT8")
    count = _image_count(tensor.get("shape"))
    dtype = DATATYPES[datatype]
    parameters = _parameters(tensor.get("parameters"), f"{INPUT_NAME}'s parameters") or {}
    _refuse_unknown(parameters, {"binary_data_size"}, f"{INPUT_NAME}'s parameters")
    if "binary_data_size" in parameters:
        if "data" in tensor:
            raise InvalidInput(f'{INPUT_NAME} has both "data" and "binary_data_size"; send one')
        flat = _from_binary(parameters["binary_data_size"], binary, count, datatype)
    else:
        if len(binary):
            raise InvalidInput(
                f"{len(binary)} bytes follow the JSON header, but no input has binary_data_size"
            )
        flat = _from_json(tensor.get("data"), count, dtype, exact)
    return flat.astype(np.float32, copy=False).reshape(count, *INPUT_SHAPE)


def _image_count(shape) -> int:
    """N of a shape the model takes; checked before anything of that size is allocated."""
    if (
        not isinstance(shape, list)
        or not all(type(size) is int for size in shape)  # bool is no size
        or len(shape) < 2
        or shape[1:] not in IMAGE_SHAPES
        or not 1 <= shape[0] <= MAX_BATCH
    ):
        raise InvalidInput(f"{INPUT_NAME} must have shape {SHAPES_HINT}")
    return shape[0]


def _from_binary(size, binary: memoryview, count: int, datatype: str) -> np.ndarray:
    if type(size) is not int or size < 0:
        raise InvalidInput("binary_data_size must be a whole number of bytes")
    if size > len(binary):
        raise InvalidInput(
            f"binary_data_size is {size}, but {len(binary)} bytes follow the JSON header"
        )
    if size != len(binary):
        raise InvalidInput(
            f"the binary sizes add up to {size} bytes, but {len(binary)} follow the JSON header"
        )
    dtype = DATATYPES[datatype]
    expected = count * PIXELS * dtype.itemsize
    if size != expected:
        raise InvalidInput(
            f"{INPUT_NAME} has {size} bytes of data; {count} image(s) of {datatype} need {expected}"
        )
    flat = np.frombuffer(binary, dtype=dtype)
    # A copy: the body's bytes are read-only, and float32 in native order is what runs.
    return checked_pixels(flat, INPUT_NAME).astype(np.float32) if dtype.kind == "f" else flat


def _from_json(data, count: int, dtype: np.dtype, exact: bool) -> np.ndarray:
    """The values of `data`, flat or nested row-major as the protocol allows, checked in C
    (see pixels.json_pixels): a per-item Python loop costs more than the inference."""
    expected = count * PIXELS
    if not isinstance(data, list):
        raise InvalidInput(f'{INPUT_NAME} needs "data": an array of {expected} numbers')
    values = data
    for _ in range(3):  # at most [N, 28, 28, 1]: three levels below the outer one
        if not values or type(values[0]) is not list:
            break
        if set(map(type, values)) != {list}:
            raise InvalidInput(f'{INPUT_NAME}\'s "data" mixes arrays and numbers at one level')
        values = list(chain.from_iterable(values))
    if len(values) != expected:
        raise InvalidInput(f"{INPUT_NAME} has {len(values)} values; its shape needs {expected}")
    if dtype == DATATYPES["FP32"]:
        return json_pixels(values, INPUT_NAME, exact=exact)
    # uint8_values takes a boolean for 1 or 0: only where none can be (see pixels.no_booleans).
    if exact or set(map(type, values)) <= {int}:
        whole = uint8_values(values)
        if whole is not None:
            return whole
    raise InvalidInput(f"{INPUT_NAME} is UINT8: every value must be an integer 0..255")


def _outputs(outputs, binary_default: bool) -> tuple[RequestedOutput, ...]:
    """The outputs asked for; without "outputs", the network's own output, probabilities."""
    if outputs is None:
        return (RequestedOutput(OUTPUT_NAME, binary_default),)
    if not isinstance(outputs, list) or not 1 <= len(outputs) <= len(OUTPUTS):
        raise InvalidInput(f'"outputs" must list one or more of {", ".join(OUTPUTS)}')
    requested = []
    for output in outputs:
        if not isinstance(output, dict) or output.get("name") not in OUTPUTS:
            raise InvalidInput(f"each output must be an object named one of {', '.join(OUTPUTS)}")
        _refuse_unknown(output, OUTPUT_FIELDS, "a requested output")
        name = output["name"]
        parameters = _parameters(output.get("parameters"), f"{name}'s parameters") or {}
        _refuse_unknown(parameters, {"binary_data"}, f"{name}'s parameters")
        binary = parameters.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise InvalidInput(f"{name}'s binary_data must be true or false")
        requested.append(RequestedOutput(name, binary))
    if len({output.name for output in requested}) != len(requested):
        raise InvalidInput('"outputs" names an output twice')
    return tuple(requested)


def _binary_default(parameters: dict[str, object] | None) -> bool:
    binary = (parameters or {}).get("binary_data_output", False)
    if not isinstance(binary, bool):
        raise InvalidInput("binary_data_output must be true or false")
    return binary


def _parameters(parameters, where: str) -> dict[str, object] | None:
    """The protocol's parameters: an object of strings, numbers and booleans, bounded in size
    (the request's are echoed back)."""
    if parameters is None:
        return None
    if not isinstance(parameters, dict) or len(parameters) > MAX_PARAMETERS:
        raise InvalidInput(f"{where} must be an object of at most {MAX_PARAMETERS} entries")
    for name, value in parameters.items():
        if len(name) > MAX_PARAMETER_NAME_CHARS:
            raise InvalidInput(
                f"{where} may have names of at most {MAX_PARAMETER_NAME_CHARS} characters"
            )
        if not isinstance(value, str | int | float) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            raise InvalidInput(f"{where} may hold only strings, numbers and booleans")
        if isinstance(value, str) and len(value) > MAX_PARAMETER_VALUE_CHARS:
            raise InvalidInput(
                f"{where} may hold strings of at most {MAX_PARAMETER_VALUE_CHARS} characters"
            )
    return parameters


def _request_id(request_id) -> str | None:
    if request_id is None:
        return None
    if not isinstance(request_id, str) or len(request_id) > MAX_ID_CHARS:
        raise InvalidInput(f'"id" must be a string of at most {MAX_ID_CHARS} characters')
    return request_id


def _refuse_unknown(fields: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(fields) - known)
    if unknown:
        # Named, but shortened: an error does not echo a stranger's text back at length.
        raise InvalidInput(f"{where} has a field this server does not know: {unknown[0][:40]!r}")
