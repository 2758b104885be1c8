"""The model frontier: accuracy against cost for each candidate recipe, all measured in one run.

    python -m benchmarks.model_frontier build/frontier/cnn-1.1 build/frontier/wide-ema ... \
        --baseline cnn-1.1 --markdown docs/model_frontier.md

Each argument is a folder with a model.onnx and the report.json that `python -m
conversion.pipeline` wrote beside it. Accuracy is on the MNIST test set ($MNIST_PATH or --data),
the top digit of `probabilities` (what a model flags as not a digit is in the last column, from
its report); latency and throughput use the app's own session options (one thread), and the
models take turns round by round, so that whatever else the machine is doing weighs on all of
them alike. The table replaces the one between the markers in --markdown; docs/model_frontier.md
says how to rebuild it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from functions.model_contract import INPUT_NAME, INPUT_SHAPE, session_options

ROUNDS = 7
SINGLE_RUNS_PER_ROUND = 300
BATCH = 256
BATCH_RUNS_PER_ROUND = 12
TABLE_START = "<!-- frontier:start -->"
TABLE_END = "<!-- frontier:end -->"


@dataclass
class Candidate:
    name: str
    folder: Path
    report: dict
    session: ort.InferenceSession
    single_ms: list[float] = field(default_factory=list)
    batch_images_per_s: list[float] = field(default_factory=list)
    figures: dict = field(default_factory=dict)


def multiply_adds(onnx_path: Path) -> int:
    """Multiply-adds of one image through the Conv, MatMul and Gemm nodes."""
    model = onnx.load(onnx_path)
    for dim in model.graph.input[0].type.tensor_type.shape.dim:
        if dim.dim_param:
            dim.dim_value = 1  # one image
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {
        value.name: [dim.dim_value for dim in value.type.tensor_type.shape.dim]
        for value in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]
    }
    shapes.update({init.name: list(init.dims) for init in model.graph.initializer})
    total = 0
    for node in inferred.graph.node:
        if node.op_type == "Conv":
            output = shapes[node.output[0]]  # N, C_out, H, W
            weights = shapes[node.input[1]]  # C_out, C_in / groups, kH, kW
            total += int(np.prod(output)) * int(np.prod(weights[1:]))
        elif node.op_type in ("MatMul", "Gemm"):
            # One image is one row: every weight is used once (the flatten's row shape is only
            # known at run time).
            total += int(np.prod(shapes[node.input[1]]))
    return total


def load_candidate(folder: Path) -> Candidate:
    report = json.loads((folder / "report.json").read_text())
    # Reports from before recipes existed are mnist-cnn-1.1.0's.
    name = report["training"]["settings"].get("recipe", "cnn-1.1")
    session = ort.InferenceSession(
        str(folder / "model.onnx"), session_options(), providers=["CPUExecutionProvider"]
    )
    return Candidate(name=name, folder=folder, report=report, session=session)


def accuracy(candidate: Candidate, images: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
    predictions = np.concatenate(
        [
            candidate.session.run(None, {INPUT_NAME: images[start : start + BATCH]})[0].argmax(1)
            for start in range(0, len(images), BATCH)
        ]
    )
    errors = int(np.sum(predictions != labels))
    return 1 - errors / len(labels), errors


def measure_speed(candidates: list[Candidate], images: np.ndarray) -> None:
    """Rounds in which every model takes its turn: single images, then batches."""
    single = {INPUT_NAME: images[:1]}
    batch = {INPUT_NAME: images[:BATCH]}
    for candidate in candidates:  # warm-up
        for _ in range(100):
            candidate.session.run(None, single)
        candidate.session.run(None, batch)
    for _ in range(ROUNDS):
        for candidate in candidates:
            timings = np.empty(SINGLE_RUNS_PER_ROUND)
            for run in range(SINGLE_RUNS_PER_ROUND):
                started = time.perf_counter()
                candidate.session.run(None, single)
                timings[run] = time.perf_counter() - started
            candidate.single_ms.extend(timings * 1e3)
        for candidate in candidates:
            started = time.perf_counter()
            for _ in range(BATCH_RUNS_PER_ROUND):
                candidate.session.run(None, batch)
            seconds = time.perf_counter() - started
            candidate.batch_images_per_s.append(BATCH * BATCH_RUNS_PER_ROUND / seconds)


def training_minutes(report: dict) -> float:
    return report["pipeline_seconds"] / 60


def single_image_ms(candidate: Candidate) -> tuple[float, float]:
    """Median of all runs, and the median of the quietest round (the least disturbed by other
    work on the machine)."""
    rounds = [
        float(np.median(candidate.single_ms[start : start + SINGLE_RUNS_PER_ROUND]))
        for start in range(0, len(candidate.single_ms), SINGLE_RUNS_PER_ROUND)
    ]
    return float(np.median(candidate.single_ms)), min(rounds)


def batch_rate(candidate: Candidate) -> tuple[float, float]:
    """Median over the rounds, and the quietest (fastest) round."""
    return (
        float(np.median(candidate.batch_images_per_s)),
        float(max(candidate.batch_images_per_s)),
    )


def table(candidates: list[Candidate], baseline: Candidate) -> str:
    base_ms, base_quiet_ms = single_image_ms(baseline)
    base_rate, base_quiet_rate = batch_rate(baseline)
    rows = [
        "| recipe | version | MNIST test accuracy (errors) | ONNX size | multiply-adds per image "
        "| single-image p50: all rounds, quietest (speed vs baseline) "
        "| batch-256 images/s: median, quietest round (vs baseline) | `make train` "
        "| not a digit: held-out negatives flagged, test digits flagged |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for candidate in candidates:
        figures = candidate.figures
        ms, quiet_ms = single_image_ms(candidate)
        rate, quiet_rate = batch_rate(candidate)
        rows.append(
            f"| `{candidate.name}` | {candidate.report['metadata']['version']} "
            f"| {figures['accuracy']:.2%} ({figures['errors']}) "
            f"| {figures['size_bytes'] / 1e6:.2f} MB | {figures['multiply_adds'] / 1e6:.2f} M "
            f"| {ms:.3f} ms (x{base_ms / ms:.2f}), "
            f"{quiet_ms:.3f} ms (x{base_quiet_ms / quiet_ms:.2f}) "
            f"| {rate:,.0f} (x{rate / base_rate:.2f}), {quiet_rate:,.0f} "
            f"(x{quiet_rate / base_quiet_rate:.2f}) "
            f"| {training_minutes(candidate.report):.1f} min | {not_digit(candidate.report)} |"
        )
    return "\n".join(rows)


def not_digit(report: dict) -> str:
    """What the model's is_digit rule flags, as its report states (conversion/evaluate.py)."""
    figures = report.get("evaluation", {}).get("not_digit") or {}
    if not figures.get("rule"):
        return "no rule: every image is a digit"
    return (
        f"{figures.get('held_out_flagged_share', 0.0):.1%}, "
        f"{figures['test_flagged_share']:.2%} (`{figures['rule']}`)"
    )


def replace_table(markdown: Path, rendered: str) -> None:
    text = markdown.read_text()
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    markdown.write_text(f"{head}{TABLE_START}\n{rendered}\n{TABLE_END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", type=Path, help="folders with model.onnx and report")
    parser.add_argument("--baseline", required=True, help="recipe the ratios are relative to")
    parser.add_argument("--data", default=os.environ.get("MNIST_PATH"), help="mnist.npz")
    parser.add_argument("--markdown", type=Path, help="replace the table in this file")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args()
    if not args.data:
        parser.error("--data or $MNIST_PATH: the MNIST test set measures accuracy")

    with np.load(args.data) as archive:
        images = archive["x_test"].astype(np.float32).reshape(-1, *INPUT_SHAPE)
        labels = archive["y_test"]
    candidates = [load_candidate(folder) for folder in args.folders]
    by_name = {candidate.name: candidate for candidate in candidates}
    if args.baseline not in by_name:
        parser.error(f"--baseline {args.baseline!r} is none of {sorted(by_name)}")
    for candidate in candidates:
        test_accuracy, errors = accuracy(candidate, images, labels)
        candidate.figures = {
            "accuracy": test_accuracy,
            "errors": errors,
            "size_bytes": (candidate.folder / "model.onnx").stat().st_size,
            "multiply_adds": multiply_adds(candidate.folder / "model.onnx"),
        }
    measure_speed(candidates, images)
    rendered = table(candidates, by_name[args.baseline])
    print(rendered)
    if args.markdown:
        replace_table(args.markdown, rendered)
    if args.json:
        raw = {
            candidate.name: {
                **candidate.figures,
                "single_image_p50_ms": float(np.median(candidate.single_ms)),
                "single_image_round_p50_ms": [
                    float(np.median(candidate.single_ms[start : start + SINGLE_RUNS_PER_ROUND]))
                    for start in range(0, len(candidate.single_ms), SINGLE_RUNS_PER_ROUND)
                ],
                "batch_images_per_s_rounds": candidate.batch_images_per_s,
                "pipeline_seconds": candidate.report["pipeline_seconds"],
            }
            for candidate in candidates
        }
        args.json.write_text(json.dumps(raw, indent=2) + "\n")


if __name__ == "__main__":
    main()
