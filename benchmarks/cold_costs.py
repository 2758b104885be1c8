"""What a statement of the handler costs right after an inference, against its cost in a tight
loop of its own. The session streams the model's weights (1.4 MB) through the CPU's caches on
every run, so the Python code after it runs with cold caches: that is the cost a request pays.
Each statement is timed as "an inference, then the statement" minus "an inference alone", the
two alternating call by call, in interleaved rounds (medians).

    python -m benchmarks.cold_costs      (about 6 s; the figures are in docs/benchmarks.md)
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

# Pairs the handler chose between, the one it uses second (functions/serving/*.py).
SETUP = """
import math
import numpy as np
import azure.functions as func
row = probabilities.tolist()[0]
latency_ms = 0.1423456789
pixels = np.frombuffer(bytearray(range(256)) * 3 + bytearray(16), dtype=np.uint8)
"""
STATEMENTS = {
    "round(latency_ms, 3)": "round(latency_ms, 3)",
    "round(latency_ms * 1e3) / 1e3": "round(latency_ms * 1e3) / 1e3",
    "[round(v, 6) for v in row]": "[round(v, 6) for v in row]",
    "[round(v * 1e6) / 1e6 for v in row]": "[round(v * 1e6) / 1e6 for v in row]",
    "np.isfinite(p).all()": "np.isfinite(probabilities).all()",
    "math.isfinite(sum(p.ravel().tolist()))": "math.isfinite(sum(probabilities.ravel().tolist()))",
    "np.argmax(p, axis=1)": "np.argmax(probabilities, axis=1)",
    "astype, reshape, np.newaxis": "pixels.astype(np.float32).reshape(28, 28, 1)[np.newaxis]",
    "astype, reshape to (1, 28, 28, 1)": "pixels.astype(np.float32).reshape(1, 28, 28, 1)",
    "func.HttpResponse, 2 headers": (
        'func.HttpResponse(b"{}", status_code=200, headers={"A": "b", "C": "d"}, '
        'mimetype="application/json", charset="utf-8")'
    ),
}


def measure(rounds: int, calls: int) -> dict[str, dict[str, float]]:
    import function_app  # noqa: PLC0415 - the app's own model and session options

    model = function_app.services.provider.current()
    images = np.zeros((1, 28, 28, 1), dtype=np.float32)
    names = {"probabilities": model.predict(images).probabilities}
    exec(SETUP, names)  # noqa: S102 - our own constant
    compiled = {label: compile(code, label, "exec") for label, code in STATEMENTS.items()}
    nothing = compile("pass", "nothing", "exec")
    # Per statement, calls with it and calls without it, alternating: each difference is taken
    # under the same load, and the statement ran one request ago, as in the handler.
    after = {label: ([], []) for label in compiled}
    alone = {label: [] for label in ("nothing", *compiled)}
    for _ in range(rounds):
        for label, times in after.items():
            for _ in range(calls):
                for code, into in ((nothing, times[0]), (compiled[label], times[1])):
                    started = time.perf_counter_ns()
                    model.predict(images)
                    exec(code, names)  # noqa: S102
                    into.append(time.perf_counter_ns() - started)
        for label, medians in alone.items():
            medians.append(_median_time(compiled.get(label, nothing), names, calls))
    idle = statistics.median(alone.pop("nothing"))  # the timing's own cost
    return {
        label: {
            "after_inference_us": (statistics.median(with_it) - statistics.median(without)) / 1e3,
            "tight_loop_us": (statistics.median(alone[label]) - idle) / 1e3,
        }
        for label, (without, with_it) in after.items()
    }


def _median_time(code, names: dict, calls: int) -> float:
    """The median time of an exec of `code` in a tight loop."""
    times = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        exec(code, names)  # noqa: S102
        times.append(time.perf_counter_ns() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=100, help="per statement and round")
    args = parser.parse_args()
    print(f"{'statement':42s} {'after an inference':>20s} {'tight loop':>12s}")
    for label, figures in measure(args.rounds, args.calls).items():
        print(
            f"{label:42s} {figures['after_inference_us']:17.2f} us "
            f"{figures['tight_loop_us']:9.2f} us"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
