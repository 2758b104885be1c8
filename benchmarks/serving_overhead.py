"""What serving costs beyond the inference, in process, against the bare onnxruntime session:

- `runtime`: predict invoked through Azure's Python runtime (azure-functions-runtime) as the
  local host invokes it, `Worker.invoke` with the `RpcHttp` of a JSON request (no HTTP server):
  the request turned into a `func.HttpRequest`, the function declared as the app declares it
  (`async def`, run in the inference pool), its answer turned back into an `RpcHttp`;
- `runtime_thread_pool`: the same handler declared as a plain function, which the runtime runs in
  its thread pool: the other way the app could declare it;
- `handler`: the app's predict handler called with a `func.HttpRequest`, no runtime;
- `v2_json`, `v2_binary`: the Open Inference Protocol (V2) handler, UINT8 images in JSON or in
  the binary tensor extension with binary output.

The runtime serves the repository's `function_app.py` from a folder of its own, which adds the
plain declaration beside the deployed ones, so that every path shares one model and session.
Interleaved rounds (each round runs every path once, so load from elsewhere on the machine falls
on all of them alike), medians over the rounds.

    python -m benchmarks.serving_overhead      (also step 6 of `make benchmark`)

Targets (issue 11): single image, the handler's p50 at most 1.3x the session's; batches of 256,
the handler at least 0.8x the session's images/s, the binary V2 path at least 0.9x.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from benchmarks.mnist_digits import ROOT, digits
from functions.model_contract import INPUT_NAME

BATCH = 256
IN_POOL = "predict_in_pool"
REASON = "This function was programmatically called via the host APIs."
# The runtime imports `function_app` from the folder it is given: this one loads the repository's
# under another name and declares predict's handler again, as a plain function.
RUNTIME_APP = '''"""The repository's function app, and predict declared as a plain function."""
import importlib.util
import sys

import azure.functions as func

ROOT = @ROOT@
if ROOT not in sys.path:
    sys.path.append(ROOT)
_spec = importlib.util.spec_from_file_location("deployed_function_app", ROOT + "/function_app.py")
deployed = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(deployed)

from functions.api.endpoint import bind  # noqa: E402
from functions.api.handlers import predict  # noqa: E402

app, services = deployed.app, deployed.services
app.function_name(name="@IN_POOL@")(
    app.route(route="@IN_POOL@", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)(
        bind(predict, services)
    )
)
'''
Call = Callable[[], object] | Callable[[], Awaitable[None]]


def _request(route: str, body: bytes, headers: dict[str, str], params: dict[str, str] | None):
    import azure.functions as func  # noqa: PLC0415 - imported where measured

    return func.HttpRequest(
        "POST", f"http://localhost/api/{route}", headers=headers, body=body, route_params=params
    )


def rpc_http(route: str, body: bytes, headers: dict[str, str]):
    """The trigger data the host sends for a POST of ``body`` (as local_host/http_trigger.py)."""
    from local_host.rpc import protos  # noqa: PLC0415

    http = protos.RpcHttp(
        method="POST",
        url=f"http://localhost/api/{route}",
        headers={name.lower(): value for name, value in headers.items()},
        body=protos.TypedData(bytes=body),
    )
    return protos.TypedData(http=http)


def v2_body(images: np.ndarray, *, binary: bool) -> tuple[bytes, dict[str, str]]:
    """A V2 infer request for UINT8 images [N, 784], binary or JSON, asking for binary output
    when the input is binary (as tritonclient does by default)."""
    tensor = {"name": "pixels", "shape": [len(images), 784], "datatype": "UINT8"}
    raw = images.astype(np.uint8).reshape(len(images), 784)
    if not binary:
        tensor["data"] = raw.ravel().tolist()
        return json.dumps({"inputs": [tensor]}).encode(), {"Content-Type": "application/json"}
    tensor["parameters"] = {"binary_data_size": raw.nbytes}
    header = json.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}}).encode()
    return header + raw.tobytes(), {"Inference-Header-Content-Length": str(len(header))}


def predict_body(batch: np.ndarray) -> bytes:
    if len(batch) == 1:
        return json.dumps({"pixels": batch[0].ravel().tolist()}).encode()
    return json.dumps({"images": [image.ravel().tolist() for image in batch]}).encode()


async def start_runtime(folder: Path):
    """The runtime serving RUNTIME_APP from ``folder``: the worker and the app module."""
    from local_host.worker import Worker  # noqa: PLC0415

    app_file = folder / "function_app.py"
    app_file.write_text(
        RUNTIME_APP.replace("@ROOT@", repr(str(ROOT))).replace("@IN_POOL@", IN_POOL)
    )
    worker = await Worker.start(folder)
    return worker, sys.modules["function_app"]


def paths(images: np.ndarray, worker, app) -> dict[str, dict[str, Call]]:
    """Per case (single, batch), each path as a call that does one request: plain calls, or
    coroutine functions for the paths through the runtime."""
    from functions.api import handlers, v2_handlers  # noqa: PLC0415
    from functions.api.endpoint import bind  # noqa: PLC0415
    from functions.api.v2_model import MODEL_NAME  # noqa: PLC0415

    functions = {function.name: function for function in worker.functions}
    predict = bind(handlers.predict, app.services)
    v2 = bind(v2_handlers.infer, app.services)
    model = app.services.provider.current()
    infer_route, params = f"v2/models/{MODEL_NAME}/infer", {"name": MODEL_NAME}
    json_type = {"Content-Type": "application/json"}

    def handler(function, request) -> Callable[[], None]:
        def call() -> None:
            response = function(request)
            assert response.status_code == 200, response.get_body()[:200]

        return call

    def invoked(name: str, data) -> Callable[[], Awaitable[None]]:
        function = functions[name]

        async def call() -> None:
            returned = await worker.invoke(function, data, REASON)
            assert returned.http.status_code == "200", returned.http.body.bytes[:200]

        return call

    cases = {}
    for case, batch in (("single", images[:1]), ("batch", np.resize(images, (BATCH, 28, 28)))):
        tensor = batch.astype(np.float32).reshape(-1, 28, 28, 1)
        body = predict_body(batch)
        cases[case] = {
            # The bare session: what serving adds (the watchdog, the answer check) is counted.
            "session": lambda model=model, tensor=tensor: model.session.run(
                None, {INPUT_NAME: tensor}
            ),
            "handler": handler(predict, _request("predict", body, json_type, None)),
            "runtime": invoked("predict", rpc_http("predict", body, json_type)),
            "runtime_thread_pool": invoked(IN_POOL, rpc_http(IN_POOL, body, json_type)),
            "v2_json": handler(v2, _request(infer_route, *v2_body(batch, binary=False), params)),
            "v2_binary": handler(v2, _request(infer_route, *v2_body(batch, binary=True), params)),
        }
    return cases


async def _run(call: Call) -> None:
    if inspect.iscoroutinefunction(call):
        await call()
    else:
        call()


async def _single_times(call: Call, calls: int, into: list[float]) -> None:
    if inspect.iscoroutinefunction(call):
        for _ in range(calls):
            started = time.perf_counter()
            await call()
            into.append(time.perf_counter() - started)
    else:
        for _ in range(calls):
            started = time.perf_counter()
            call()
            into.append(time.perf_counter() - started)


async def _batch_rate(call: Call, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await _run(call)
    return BATCH * calls / (time.perf_counter() - started)


async def measure_async(
    images: np.ndarray, rounds: int, single_calls: int, batch_calls: int
) -> dict:
    with tempfile.TemporaryDirectory(prefix="runtime-app-") as folder:
        worker, app = await start_runtime(Path(folder))
        try:
            cases = paths(images, worker, app)
            for case in cases.values():  # warm-up: first loads, first allocations, threads
                for call in case.values():
                    for _ in range(5):
                        await _run(call)
            single = {name: [] for name in cases["single"]}
            batch = {name: [] for name in cases["batch"]}
            for _ in range(rounds):
                for name, call in cases["single"].items():
                    await _single_times(call, single_calls, single[name])
                for name, call in cases["batch"].items():
                    batch[name].append(await _batch_rate(call, batch_calls))
        finally:
            worker.stop()
    return summary(
        {name: float(np.median(times)) * 1e3 for name, times in single.items()},
        {name: float(np.median(rates)) for name, rates in batch.items()},
    )


def measure(images: np.ndarray, rounds: int, single_calls: int, batch_calls: int) -> dict:
    return asyncio.run(measure_async(images, rounds, single_calls, batch_calls))


def summary(p50: dict[str, float], per_second: dict[str, float]) -> dict:
    return {
        "single_p50_ms": p50,
        "batch_images_per_s": per_second,
        "single_ratio_to_session": {
            name: value / p50["session"] for name, value in p50.items() if name != "session"
        },
        "batch_ratio_to_session": {
            name: value / per_second["session"]
            for name, value in per_second.items()
            if name != "session"
        },
        # What the runtime adds to the handler: p50 runtime / handler; images/s runtime / handler.
        "runtime_to_handler": {
            "single_p50": p50["runtime"] / p50["handler"],
            "batch_images_per_s": per_second["runtime"] / per_second["handler"],
        },
        # The plain function in the runtime's thread pool against the app's async declaration.
        "thread_pool_to_async": {
            "single_p50": p50["runtime_thread_pool"] / p50["runtime"],
            "batch_images_per_s": per_second["runtime_thread_pool"] / per_second["runtime"],
        },
    }


def report(results: dict) -> str:
    p50, rates = results["single_p50_ms"], results["batch_images_per_s"]
    single, batch = results["single_ratio_to_session"], results["batch_ratio_to_session"]
    runtime, pool = results["runtime_to_handler"], results["thread_pool_to_async"]
    return "\n".join(
        [
            f"   single image p50: session {p50['session']:.3f} ms; handler "
            f"{p50['handler']:.3f} ms = {single['handler']:.2f}x (target <= 1.3x); through the "
            f"runtime {p50['runtime']:.3f} ms = {single['runtime']:.2f}x "
            f"({runtime['single_p50']:.2f}x the handler); V2 JSON {p50['v2_json']:.3f} ms = "
            f"{single['v2_json']:.2f}x, V2 binary {p50['v2_binary']:.3f} ms = "
            f"{single['v2_binary']:.2f}x",
            f"   batches of {BATCH}: session {rates['session']:,.0f} images/s; handler "
            f"{rates['handler']:,.0f} = {batch['handler']:.2f}x (target >= 0.8x); through the "
            f"runtime {rates['runtime']:,.0f} = {batch['runtime']:.2f}x "
            f"({runtime['batch_images_per_s']:.2f}x the handler); V2 JSON "
            f"{rates['v2_json']:,.0f} = {batch['v2_json']:.2f}x, V2 binary "
            f"{rates['v2_binary']:,.0f} = {batch['v2_binary']:.2f}x (target >= 0.9x)",
            f"   predict async (in the inference pool) against a plain function in the "
            f"runtime's thread pool: single p50 {p50['runtime']:.3f} and "
            f"{p50['runtime_thread_pool']:.3f} ms ({pool['single_p50']:.2f}x); batches "
            f"{rates['runtime']:,.0f} and {rates['runtime_thread_pool']:,.0f} images/s "
            f"({pool['batch_images_per_s']:.2f}x)",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--single-calls", type=int, default=200, help="per path and round")
    parser.add_argument("--batch-calls", type=int, default=3, help="per path and round")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = measure(digits(BATCH), args.rounds, args.single_calls, args.batch_calls)
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
