"""Step 2, convert: the Keras model in, the ONNX file out, checked against Keras on every MNIST
test image (the same digit on each, probabilities within 1e-4) or the step fails.

python -m conversion.steps.convert --trained build/steps/trained --data mnist.npz \
    --out build/steps/converted
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

# Before TensorFlow is imported: it reads its log level once, at import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import onnx

from conversion.convert import OPSET, convert_to_onnx
from conversion.data import DatasetError
from conversion.steps.errors import StepInputError, required_file, run_step, step_parser
from conversion.steps.train import KERAS_FILE, load_data
from conversion.verify import VerificationError, verify_against_keras

MODEL_FILE = "model.onnx"
CONVERSION_FILE = "conversion.json"
log = logging.getLogger("conversion.convert")


def convert_and_verify(
    model: keras.Model, x_test: np.ndarray, onnx_path: str | os.PathLike
) -> tuple[onnx.ModelProto, dict]:
    """Writes the ONNX file and returns it with the conversion record (opset, parity figures);
    raises VerificationError when ONNX and Keras disagree."""
    started = time.perf_counter()
    onnx_model = convert_to_onnx(model, onnx_path)
    verification = verify_against_keras(model, onnx_path, x_test)
    log.info("verified: ONNX agrees with Keras on %d test images", verification["images"])
    record = {
        "opset": OPSET,
        "verification": verification,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return onnx_model, record


def load_keras_model(trained: str | os.PathLike) -> keras.Model:
    path = required_file(trained, KERAS_FILE, "train step")
    try:
        return keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as error:
        raise StepInputError(f"{path}: not a loadable Keras model ({error})") from error


def main(argv: list[str] | None = None) -> int:
    parser = step_parser(__doc__)
    parser.add_argument("--trained", required=True, help="the train step's output folder")
    parser.add_argument("--data", help="mnist.npz or IDX folder: its test images check parity")
    parser.add_argument("--out", required=True, help=f"folder for {MODEL_FILE}, {CONVERSION_FILE}")
    args = parser.parse_args(argv)

    def step() -> None:
        model = load_keras_model(args.trained)
        mnist = load_data(args.data)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        _, record = convert_and_verify(model, mnist.x_test, out / MODEL_FILE)
        (out / CONVERSION_FILE).write_text(json.dumps(record, indent=2) + "\n")
        log.info("saved %s and %s in %s", MODEL_FILE, CONVERSION_FILE, out)

    return run_step("convert", step, (DatasetError, VerificationError))


if __name__ == "__main__":
    sys.exit(main())
