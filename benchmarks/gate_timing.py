"""How long the promotion gate takes to judge an accepted drop (the bundled network under a new
version name), its trial process included: `python -m benchmarks.gate_timing`."""

from __future__ import annotations

import statistics
import time

from functions.promotion.gate import GatePolicy, judge
from functions.promotion.gate_set import load_gate_set
from functions.serving.loaded_model import load_model_file
from functions.serving.provider import BUNDLED_MODEL
from tests.helpers import onnx_bytes_with_version

RUNS = 5


def main() -> None:
    bundled = load_model_file(BUNDLED_MODEL, source="bundled")
    content = onnx_bytes_with_version(BUNDLED_MODEL, "timing-v2")
    policy = GatePolicy(min_accuracy=0.98, max_regression=0.005, signing_key=None)
    seconds = []
    for _ in range(RUNS):
        started = time.perf_counter()
        verdict = judge(
            "timing-v2.onnx", content, {}, policy=policy, gate_set=load_gate_set(), current=bundled
        )
        seconds.append(time.perf_counter() - started)
        if not verdict.accepted:
            raise SystemExit(f"the bundled network was refused: {verdict.reason}")
    print(f"accepted drop judged in {statistics.median(seconds):.2f} s (median of {RUNS})")


if __name__ == "__main__":
    main()
