"""The baseline for the HTTP benchmark: a lean FastAPI + uvicorn + onnxruntime server on the same
model, as a competent engineer would write one without Azure Functions. It takes what our
clients send (``{"pixels": [...]}`` or the bare JSON array of 784 pixels, one image or a list
of them) and answers every probability; nothing else: no validation, no problem documents.
Run: ``python -m benchmarks.lean_server --port 8000 [--workers 2]``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, Request, Response

from functions.model_contract import INPUT_NAME, session_options
from functions.serving.provider import BUNDLED_MODEL

app = FastAPI()
session = ort.InferenceSession(str(BUNDLED_MODEL), session_options())


@app.get("/api/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/api/predict")
async def predict(request: Request) -> Response:
    payload = json.loads(await request.body())
    pixels = np.asarray(payload["pixels"] if isinstance(payload, dict) else payload, np.float32)
    images = pixels.reshape(-1, 28, 28, 1)  # raw 0..255: the model normalises (contracts.md)
    probabilities = session.run(None, {INPUT_NAME: images})[0]
    digits = probabilities.argmax(axis=1)
    answers = [
        {"prediction": int(d), "probabilities": p.tolist()}
        for d, p in zip(digits, probabilities, strict=True)
    ]
    body = answers[0] if pixels.ndim == 1 else {"predictions": answers}
    return Response(json.dumps(body), media_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lean_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    arguments = parser.parse_args()
    uvicorn.run(
        "benchmarks.lean_server:app",
        host=arguments.host,
        port=arguments.port,
        workers=arguments.workers,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
