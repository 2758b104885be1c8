"""Serving benchmark: one command, one run, every figure against its baseline.

    make benchmark            (or: .venv/bin/python -m benchmarks.serving)

1. in-process handler latency for single-image JSON requests (p50, p99): the app's predict
   called with a `func.HttpRequest`;
2. the earlier system's way, in the same run: Keras `model.predict` per request on the same
   network, and the ratio;
3. batch throughput (images/s) through the handler with 256-image requests, and in the session;
4. cold start through Azure's Python runtime: a fresh process that imports azure-functions-runtime,
   indexes and loads the app (`Worker.start` on the repository) and answers its first prediction
   (wall time from spawn to the answer, peak RSS; median of five), against a fresh process
   importing TensorFlow and loading the Keras model;
5. HTTP through the local host (`python -m local_host`): requests/s, p50/p99 latency and errors,
   with concurrent clients for a fixed time;
6. in process, against the bare session (benchmarks/serving_overhead.py): predict through the
   runtime, the handler and the V2 handler, single image p50 and batches of 256; and predict
   declared async (as the app does) against a plain function in the runtime's thread pool.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from benchmarks import serving_overhead
from benchmarks.mnist_digits import ROOT, digits


def percentiles(seconds: list[float]) -> dict[str, float]:
    values = np.array(seconds) * 1e3
    return {"p50_ms": float(np.median(values)), "p99_ms": float(np.percentile(values, 99))}


def handler_latency(images: np.ndarray, runs: int) -> dict[str, float]:
    import azure.functions as func  # noqa: PLC0415 - imported where measured

    import function_app  # noqa: PLC0415
    from functions.api.handlers import predict  # noqa: PLC0415

    bodies = [json.dumps({"pixels": image.ravel().tolist()}).encode() for image in images]
    headers = {"Content-Type": "application/json"}

    def request(body: bytes) -> func.HttpRequest:
        return func.HttpRequest("POST", "http://localhost/api/predict", headers=headers, body=body)

    services = function_app.services
    for body in bodies[:50]:  # warm-up, and the model's first load
        assert predict(request(body), services).status_code == 200
    timings = []
    for run in range(runs):
        req = request(bodies[run % len(bodies)])
        started = time.perf_counter()
        response = predict(req, services)
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
    from functions.api.handlers import predict  # noqa: PLC0415

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
        assert predict(request, function_app.services).status_code == 200
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


# Prepended to each cold-start child: it reports its answer at once, with its own peak RSS
# (VmHWM, KiB). The kernel's ru_maxrss of a child (getrusage(RUSAGE_CHILDREN), /usr/bin/time)
# also counts the memory of the benchmark process it was spawned from, several hundred MiB here.
ANSWERED = """
def answered(ok):
    peak = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
    print("answered" if ok else "failed", peak, flush=True)
"""
# The app's first answer through Azure's Python runtime, as the proxy worker drives it: the app in
# the working directory (the repository) indexed and loaded, then one predict invocation.
COLD_APP = """
import asyncio, json
from pathlib import Path
from local_host.rpc import protos
from local_host.worker import Worker

async def first_answer():
    worker = await Worker.start(Path.cwd())
    predict = next(f for f in worker.functions if f.name == "predict")
    http = protos.RpcHttp(method="POST", url="http://localhost/api/predict",
        headers={"content-type": "application/json"},
        body=protos.TypedData(bytes=json.dumps([0] * 784).encode()))
    returned = await worker.invoke(predict, protos.TypedData(http=http), "cold start")
    answered(returned.http.status_code == "200")

asyncio.run(first_answer())
"""
COLD_KERAS = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import keras
model = keras.models.load_model(sys.argv[1])
model.predict(np.zeros((1, 28, 28, 1), dtype=np.float32), verbose=0)
answered(True)
"""
# Settings the cold start runs without, whatever the shell has: the bundled model, no storage.
STORAGE_SETTINGS = ("MODELS_STORAGE",)


def cold_start(code: str, *args: str, python: str = sys.executable, runs: int = 5) -> dict:
    """A fresh interpreter running `code`, `runs` times: the wall time from spawning it to its
    answer, and its peak RSS until then (medians, and every run's)."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(STORAGE_SETTINGS)  # also MODELS_STORAGE__blobServiceUri
    }
    walls, peaks = [], []
    for _ in range(runs):
        with tempfile.TemporaryFile() as errors:  # a file: a full pipe would stall the child
            started = time.perf_counter()
            child = subprocess.Popen(  # noqa: S603
                [python, "-c", ANSWERED + code, *args],
                cwd=ROOT,
                env=environ,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
            answer = child.stdout.readline()
            walls.append(time.perf_counter() - started)
            child.stdout.read()
            child.wait(timeout=120)
            if not answer.startswith("answered ") or child.returncode != 0:
                errors.seek(0)
                raise RuntimeError(
                    f"the cold-start child ({python}) gave {answer!r}, status "
                    f"{child.returncode}:\n{errors.read().decode(errors='replace')[-3000:]}"
                )
        peaks.append(int(answer.split()[1]) / 1024)  # VmHWM is in KiB
    return {
        "wall_s": statistics.median(walls),
        "peak_rss_mib": statistics.median(peaks),
        "runs_wall_s": walls,
        "runs_peak_rss_mib": peaks,
    }


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


CLOSED_PORT = 9  # discard: nothing listens there


def local_http(images: np.ndarray, clients: int, seconds: float) -> dict[str, float]:
    """`python -m local_host`, warmed by a second of load, then loaded for `seconds`
    by benchmarks/http_load.py in a process of its own."""
    from local_stack.azurite import azurite_connection_string  # noqa: PLC0415

    port = free_port()
    # Storage on a closed port: the bundled model is served, even where an Azurite with a
    # promoted model runs.
    environ = {**os.environ, "MODELS_STORAGE": azurite_connection_string(CLOSED_PORT)}
    host = subprocess.Popen(  # noqa: S603
        [
            *(sys.executable, "-m", "local_host"),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/predict"
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/api/health", host)
        with tempfile.TemporaryDirectory() as folder:
            images_file = Path(folder) / "images.json"
            images_file.write_text(json.dumps([image.ravel().tolist() for image in images]))
            http_load(url, clients, 1, images_file)
            return http_load(url, clients, seconds, images_file)
    finally:
        host.terminate()
        try:
            host.wait(timeout=30)
        except subprocess.TimeoutExpired:
            host.kill()
            host.wait()


def wait_until_answering(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own http URL
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def http_load(url: str, clients: int, seconds: float, images_file: Path) -> dict[str, float]:
    """One closed-loop run of benchmarks.http_load against `url`."""
    result = subprocess.run(  # noqa: S603
        [
            *(sys.executable, "-m", "benchmarks.http_load", "--url", url),
            *("--clients", str(clients), "--seconds", str(seconds)),
            *("--images", str(images_file)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


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


# Each figure with a target (docs/benchmarks.md): where it is in the results, at most (<=) or at
# least (>=) what.
TARGETS = [
    ("handler p50, single image (ms)", ("handler", "p50_ms"), "<=", 0.3),
    ("Keras p50 / handler p50", ("speedup_p50",), ">=", 100),
    ("batches of 256 through the handler (images/s)", ("batch", "handler_images_per_s"), ">=", 2e4),
    ("cold start through the runtime, wall (s)", ("cold_start", "wall_s"), "<=", 0.6),
    ("cold start through the runtime, peak RSS (MiB)", ("cold_start", "peak_rss_mib"), "<=", 120),
    ("local host over HTTP (requests/s)", ("http", "requests_per_s"), ">=", 1000),
    ("local host over HTTP, errors", ("http", "errors"), "<=", 0),
    (
        "single image p50, handler / session",
        ("overhead", "single_ratio_to_session", "handler"),
        "<=",
        1.3,
    ),
    (
        "batches of 256, handler / session images/s",
        ("overhead", "batch_ratio_to_session", "handler"),
        ">=",
        0.8,
    ),
    (
        "batches of 256, V2 binary / session images/s",
        ("overhead", "batch_ratio_to_session", "v2_binary"),
        ">=",
        0.9,
    ),
]


def targets(results: dict) -> list[dict]:
    """Each figure with a target that this run measured: its value, the target, whether met."""
    rows = []
    for figure, path, sign, limit in TARGETS:
        value = results
        for key in path:
            value = value.get(key, {})
        if isinstance(value, int | float):
            met = value <= limit if sign == "<=" else value >= limit
            rows.append(
                {
                    "figure": figure,
                    "value": round(value, 3),
                    "target": f"{sign} {limit:g}",
                    "met": met,
                }
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3000, help="single-image handler calls")
    parser.add_argument("--baseline-runs", type=int, default=300, help="Keras predict calls")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    parser.add_argument("--seconds", type=float, default=10, help="HTTP load duration")
    parser.add_argument(
        "--steps",
        type=lambda text: {int(step) for step in text.split(",")},
        default=set(range(1, 7)),
        help="the steps to run, e.g. 4,6 (all by default; 2 runs 1 too, for its ratio)",
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--runtime-python",
        default=sys.executable,
        help="the interpreter for the app's cold start: one with requirements.txt only is what "
        "Azure runs (make benchmark builds it)",
    )
    args = parser.parse_args()
    steps = args.steps | ({1} if 2 in args.steps else set())
    sys.path.insert(0, str(ROOT))
    images = digits(200)

    results: dict[str, object] = {"machine": machine(), "runtime_python": args.runtime_python}
    print(f"machine: {results['machine']}", flush=True)
    if 1 in steps:
        handler = results["handler"] = handler_latency(images, args.runs)
        print(
            f"1. handler, single image: p50 {handler['p50_ms']:.3f} ms, "
            f"p99 {handler['p99_ms']:.3f} ms",
            flush=True,
        )
    if 2 in steps:
        baseline = results["keras_baseline"] = keras_baseline(images, args.baseline_runs)
        ratio = results["speedup_p50"] = baseline["p50_ms"] / handler["p50_ms"]
        print(
            f"2. Keras model.predict per request: p50 {baseline['p50_ms']:.3f} ms, "
            f"p99 {baseline['p99_ms']:.3f} ms -> handler is {ratio:.0f}x faster (p50)",
            flush=True,
        )
    if 3 in steps:
        batch = results["batch"] = batch_throughput(images, seconds=3)
        print(
            f"3. batches of 256: {batch['handler_images_per_s']:,.0f} images/s through the "
            f"handler, {batch['session_images_per_s']:,.0f} images/s in the session",
            flush=True,
        )
    if 4 in steps:
        with tempfile.TemporaryDirectory() as folder:
            keras_file = keras_model_file(folder)
            cold = results["cold_start"] = cold_start(COLD_APP, python=args.runtime_python)
            cold_keras = results["cold_start_keras"] = cold_start(COLD_KERAS, keras_file, runs=3)
        print(
            f"4. cold start through the runtime to the first prediction (median of "
            f"{len(cold['runs_wall_s'])}): {cold['wall_s']:.2f} s, {cold['peak_rss_mib']:.0f} MiB "
            f"(TensorFlow + Keras model: {cold_keras['wall_s']:.2f} s, "
            f"{cold_keras['peak_rss_mib']:.0f} MiB)",
            flush=True,
        )
    if 5 in steps:
        http = results["http"] = local_http(images, args.clients, args.seconds)
        print(
            f"5. local host over HTTP, {args.clients} clients for {args.seconds:g} s: "
            f"{http['requests_per_s']:,.0f} requests/s, p50 {http['p50_ms']:.2f} ms, "
            f"p99 {http['p99_ms']:.2f} ms, {http['errors']} errors of {http['requests']}",
            flush=True,
        )
    if 6 in steps:
        overhead = results["overhead"] = serving_overhead.measure(
            digits(serving_overhead.BATCH), rounds=15, single_calls=200, batch_calls=3
        )
        print("6. in process, against the bare session:", flush=True)
        print(serving_overhead.report(overhead), flush=True)
    results["targets"] = targets(results)
    print("targets:", flush=True)
    for row in results["targets"]:
        verdict = "met" if row["met"] else "NOT MET"
        print(f"   {row['figure']}: {row['value']:,.3f} (target {row['target']}): {verdict}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
