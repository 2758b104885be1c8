"""Serving benchmark: one command, one run, every figure against its baseline.

    make benchmark            (or: .venv/bin/python -m benchmarks.serving)

1. in-process handler latency for single-image JSON requests (p50, p99);
2. the earlier system's way, in the same run: Keras `model.predict` per request on the same
   network, and the ratio;
3. batch throughput (images/s) through the handler with 256-image requests;
4. cold start: a fresh process importing `function_app` and answering its first prediction (wall
   time, peak RSS), against a fresh process importing TensorFlow and loading the Keras model;
5. HTTP through the local host: requests/s, p50/p99 latency and errors, with concurrent clients
   for a fixed time;
6. serving overhead in process (benchmarks/serving_overhead.py): our JSON endpoint and the V2
   endpoint (JSON and binary) against the bare session, single image p50 and batches of 256;
7. HTTP against a lean FastAPI + uvicorn server on the same model (benchmarks/http_comparison.py),
   one and two processes each, at 1, 8 and 32 clients.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import serving_overhead

ROOT = Path(__file__).resolve().parent.parent
MNIST = Path(os.environ.get("MNIST_PATH") or ROOT.parent / "shared" / "data" / "mnist.npz")


def percentiles(seconds: list[float]) -> dict[str, float]:
    values = np.array(seconds) * 1e3
    return {"p50_ms": float(np.median(values)), "p99_ms": float(np.percentile(values, 99))}


def digits(count: int) -> np.ndarray:
    with np.load(MNIST) as archive:
        return archive["x_test"][:count]


def handler_latency(images: np.ndarray, runs: int) -> dict[str, float]:
    import azure.functions as func  # noqa: PLC0415 - imported where measured

    import function_app  # noqa: PLC0415
    from functions.api.blueprint import api_functions  # noqa: PLC0415

    predict = api_functions(function_app.services).predict
    bodies = [json.dumps({"pixels": image.ravel().tolist()}).encode() for image in images]
    headers = {"Content-Type": "application/json"}

    def request(body: bytes) -> func.HttpRequest:
        return func.HttpRequest("POST", "http://localhost/api/predict", headers=headers, body=body)

    for body in bodies[:50]:  # warm-up, and the model's first load
        assert predict(request(body)).status_code == 200
    timings = []
    for run in range(runs):
        req = request(bodies[run % len(bodies)])
        started = time.perf_counter()
        response = predict(req)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200
    return percentiles(timings)


def keras_baseline(images: np.ndarray, runs: int) -> dict[str, float]:
    """The earlier system's request path: JSON body -> numpy -> Keras `model.predict`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from conversion.network import build_model  # noqa: PLC0415 - TensorFlow only here

    model = build_model()
    bodies = [json.dumps(image.ravel().tolist()) for image in images]
    for body in bodies[:5]:
        model.predict(np.array(json.loads(body), dtype=np.float32).reshape(1, 28, 28, 1), verbose=0)
    timings = []
    for run in range(runs):
        started = time.perf_counter()
        pixels = np.array(json.loads(bodies[run % len(bodies)]), dtype=np.float32)
        model.predict(pixels.reshape(1, 28, 28, 1), verbose=0)
        timings.append(time.perf_counter() - started)
    return percentiles(timings)


def batch_throughput(images: np.ndarray, seconds: float) -> dict[str, float]:
    import azure.functions as func  # noqa: PLC0415

    import function_app  # noqa: PLC0415
    from functions.api.blueprint import api_functions  # noqa: PLC0415

    predict = api_functions(function_app.services).predict
    provider = function_app.services.provider
    batch = np.resize(images, (256, 28, 28))
    body = json.dumps({"images": [image.ravel().tolist() for image in batch]}).encode()
    request = func.HttpRequest(
        "POST",
        "http://localhost/api/predict",
        headers={"Content-Type": "application/json"},
        body=body,
    )
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        assert predict(request).status_code == 200
        count += len(batch)
    through_handler = count / (time.perf_counter() - started)
    model, tensor = provider.current(), batch.astype(np.float32).reshape(-1, 28, 28, 1)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.predict(tensor)
        count += len(batch)
    return {
        "handler_images_per_s": through_handler,
        "session_images_per_s": count / (time.perf_counter() - started),
    }


COLD_APP = """
import json, time
import azure.functions as func
import function_app
from functions.api.blueprint import api_functions
predict = api_functions(function_app.services).predict
request = func.HttpRequest("POST", "http://localhost/api/predict",
    headers={"Content-Type": "application/json"}, body=json.dumps([0] * 784).encode())
assert predict(request).status_code == 200
"""
COLD_KERAS = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import keras
model = keras.models.load_model(sys.argv[1])
model.predict(np.zeros((1, 28, 28, 1), dtype=np.float32), verbose=0)
"""


# The child reports its own peak RSS: the kernel's ru_maxrss of a child also counts the memory of
# the (large) benchmark process it was forked from.
PEAK_RSS = "\nprint([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"


def cold_start(code: str, *args: str, python: str = sys.executable) -> dict[str, float]:
    """Wall time and peak RSS of a fresh interpreter running `code` (median of three)."""
    walls, peaks = [], []
    for _ in range(3):
        started = time.perf_counter()
        result = subprocess.run(  # noqa: S603
            [python, "-c", code + PEAK_RSS, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        walls.append(time.perf_counter() - started)
        peaks.append(int(result.stdout.split()[-1]) / 1024)  # VmHWM is in KiB
    return {"wall_s": float(np.median(walls)), "peak_rss_mib": float(np.median(peaks))}


def keras_model_file(folder: str) -> str:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from conversion.network import build_model  # noqa: PLC0415

    path = str(Path(folder) / "baseline.keras")
    build_model().save(path)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def local_http(images: np.ndarray, clients: int, seconds: float) -> dict[str, float]:
    """`python -m local_host`, warmed, loaded from a separate client process."""
    from benchmarks import http_comparison  # noqa: PLC0415 - it imports this module

    with tempfile.TemporaryDirectory() as folder:
        images_file, body = http_comparison.written_images(images, Path(folder))
        with http_comparison.running("local host", 1, body) as server:
            return http_comparison.load(server.url, clients, seconds, images_file)


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3000, help="single-image handler calls")
    parser.add_argument("--baseline-runs", type=int, default=300, help="Keras predict calls")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    parser.add_argument("--seconds", type=float, default=10, help="HTTP load duration")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--runtime-python",
        default=sys.executable,
        help="the interpreter for the app's cold start: one with requirements.txt only is what "
        "Azure runs (make benchmark builds it)",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    images = digits(200)

    results: dict[str, object] = {"machine": machine(), "runtime_python": args.runtime_python}
    print(f"machine: {results['machine']}", flush=True)
    handler = results["handler"] = handler_latency(images, args.runs)
    print(
        f"1. handler, single image: p50 {handler['p50_ms']:.3f} ms, p99 {handler['p99_ms']:.3f} ms",
        flush=True,
    )
    baseline = results["keras_baseline"] = keras_baseline(images, args.baseline_runs)
    ratio = results["speedup_p50"] = baseline["p50_ms"] / handler["p50_ms"]
    print(
        f"2. Keras model.predict per request: p50 {baseline['p50_ms']:.3f} ms, "
        f"p99 {baseline['p99_ms']:.3f} ms -> handler is {ratio:.0f}x faster (p50)",
        flush=True,
    )
    batch = results["batch"] = batch_throughput(images, seconds=3)
    print(
        f"3. batches of 256: {batch['handler_images_per_s']:,.0f} images/s through the handler, "
        f"{batch['session_images_per_s']:,.0f} images/s in the session",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as folder:
        keras_file = keras_model_file(folder)
        cold = results["cold_start"] = cold_start(COLD_APP, python=args.runtime_python)
        cold_keras = results["cold_start_keras"] = cold_start(COLD_KERAS, keras_file)
    print(
        f"4. cold start to first prediction: {cold['wall_s']:.2f} s, "
        f"{cold['peak_rss_mib']:.0f} MiB "
        f"(TensorFlow + Keras model: {cold_keras['wall_s']:.2f} s, "
        f"{cold_keras['peak_rss_mib']:.0f} MiB)",
        flush=True,
    )
    http = results["http"] = local_http(images, args.clients, args.seconds)
    print(
        f"5. local host over HTTP, {args.clients} clients for {args.seconds:g} s: "
        f"{http['requests_per_s']:,.0f} requests/s, p50 {http['p50_ms']:.2f} ms, "
        f"p99 {http['p99_ms']:.2f} ms, {http['errors']} errors of {http['requests']}",
        flush=True,
    )
    overhead = results["overhead"] = serving_overhead.measure(
        digits(serving_overhead.BATCH), rounds=15, single_calls=200, batch_calls=3
    )
    print("6. in process, against the bare session:", flush=True)
    print(serving_overhead.report(overhead), flush=True)
    from benchmarks import http_comparison  # noqa: PLC0415 - it imports digits from here

    print("7. over HTTP, the local host against a lean FastAPI + uvicorn server:", flush=True)
    results["http_comparison"] = http_comparison.compare(digits(64), rounds=5, seconds=3)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
