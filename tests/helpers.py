"""Builders shared by the tests: real requests, pictures of MNIST digits, small ONNX files."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import io
import json
import queue
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import azure.functions as func
import numpy as np
import pytest
from PIL import Image


def http_request(
    method: str,
    route: str,
    body: bytes | str | object = b"",
    *,
    content_type: str | None = "application/json",
) -> func.HttpRequest:
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    headers = {"Content-Type": content_type} if content_type else {}
    return func.HttpRequest(
        method, f"http://localhost:7071/api/{route}", headers=headers, body=body
    )


def call(function, request: func.HttpRequest, *args: object) -> func.HttpResponse:
    """Call an HTTP function as the worker does: an `async def` one is run to its end. `args`:
    what a handler takes after the request (the app's services)."""
    answer = function(request, *args)
    return asyncio.run(answer) if inspect.iscoroutine(answer) else answer


def picture_of_digit(
    digit: np.ndarray,
    *,
    size: tuple[int, int] = (300, 240),
    scale: int = 6,
    offset: tuple[int, int] = (30, 150),
    inverted: bool = False,
    image_format: str = "PNG",
) -> bytes:
    """An MNIST digit drawn large and off-centre into a bigger picture, dark ink on white paper
    (or, inverted, light ink on black), encoded as PNG or JPEG."""
    width, height = size
    ink = Image.fromarray(digit.astype(np.uint8)).resize((28 * scale, 28 * scale), Image.BILINEAR)
    canvas = np.zeros((height, width), dtype=np.uint8)
    top, left = offset
    canvas[top : top + 28 * scale, left : left + 28 * scale] = np.asarray(ink)[
        : height - top, : width - left
    ]
    if not inverted:
        canvas = 255 - canvas
    buffer = io.BytesIO()
    Image.fromarray(canvas).convert("RGB").save(buffer, format=image_format)
    return buffer.getvalue()


def problem_of(response: func.HttpResponse) -> dict:
    assert response.mimetype == "application/problem+json"
    problem = json.loads(response.get_body())
    assert set(problem) == {"type", "title", "status", "detail"}
    assert problem["status"] == response.status_code
    return problem


def onnx_bytes_with_version(path, version: str) -> bytes:
    """A copy of an ONNX file whose metadata names another version."""
    import onnx  # noqa: PLC0415 - a development dependency, only some tests need it

    model = onnx.load(path)
    for prop in model.metadata_props:
        if prop.key == "version":
            prop.value = version
    return model.SerializeToString()


def tiny_model(
    version: str,
    *,
    channels_first: bool = False,
    fixed_batch: bool = False,
    softmax: bool = True,
    nan: bool = False,
    seed: int = 0,
) -> bytes:
    """A real, small ONNX model (a linear layer over the pixels) for the gate's bad cases:
    wrong input layout, logits instead of probabilities, NaN outputs, poor accuracy."""
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 0.01, (784, 10)).astype(np.float32)
    if nan:
        weights[0, 0] = np.nan
    input_shape = ["N", 1, 28, 28] if channels_first else ["N", 28, 28, 1]
    if fixed_batch:
        input_shape[0] = 1
    nodes = [
        helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "weights"], ["logits" if softmax else "probabilities"]),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        initializer=[numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    metadata = {
        "version": version,
        "created_at": "2026-11-27T00:00:00Z",
        "test_accuracy": "0.1",
        "training_data_sha256": "0" * 64,
        "framework": "onnx helper",
        "source_commit": "test",
    }
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def wait_for_health(
    url: str, process: subprocess.Popen, log_path: Path, timeout: float = 60
) -> None:
    """Wait until ``{url}/health`` answers; fail with the process's log as soon as it exits,
    or when ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=10):
                return  # anything but a 2xx raises HTTPError, an OSError
        except OSError:  # refused, or timed out while the app starts
            pass
        if process.poll() is not None:
            pytest.fail(f"the process exited with {process.returncode}:\n{log_path.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{url}/health did not answer in {timeout:g} s:\n{log_path.read_text()}")
        time.sleep(0.2)


def read_lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's stdout lines, fed into a queue by a thread so that waits can time out."""
    lines: queue.Queue[str] = queue.Queue()

    def forward() -> None:
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=forward, daemon=True).start()
    return lines


def wait_for_line(lines: queue.Queue[str], pattern: str, timeout: float = 60) -> re.Match[str]:
    """The match of the first line (from ``read_lines``) that matches ``pattern``."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            seen.append(lines.get(timeout=remaining))
        except queue.Empty:
            break
        if match := re.search(pattern, seen[-1]):
            return match
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(seen)}")


def blob_created(container: str, name: str, **overrides: Any) -> dict[str, Any]:
    """A BlobCreated event as Event Grid delivers it (Event Grid schema)."""
    event = {
        "id": str(uuid.uuid4()),
        "topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage"
        "/storageAccounts/devstoreaccount1",
        "subject": f"/blobServices/default/containers/{container}/blobs/{name}",
        "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": "2026-01-01T00:00:00Z",
        "dataVersion": "",
        "metadataVersion": "1",
        "data": {
            "api": "PutBlob",
            "contentType": "application/octet-stream",
            "contentLength": 5,
            "blobType": "BlockBlob",
            "url": f"http://127.0.0.1:10000/devstoreaccount1/{container}/{name}",
            "sequencer": "0" * 32,
            "eTag": "0x1",
        },
    }
    return {**event, **overrides}


def contract_item_id(pixels, label: int) -> str:
    """A correction's id in the words of docs/contracts.md section 2a, independently of the
    code: sha256 of the 784 pixel bytes, row-major, then the label as one ASCII digit."""
    content = np.asarray(pixels, dtype=np.uint8).tobytes() + str(label).encode("ascii")
    return hashlib.sha256(content).hexdigest()


def timed_request(url: str, body: bytes | None = None, *, timeout: float = 60) -> tuple:
    """(status, JSON body, seconds) of one request over real HTTP, on a connection of its own:
    a POST of JSON with `body`, else a GET."""
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    if body:
        request.add_header("Content-Type", "application/json")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, content = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, content = error.code, error.read()
    return status, json.loads(content or b"{}"), time.monotonic() - started
