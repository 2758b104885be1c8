"""What serving costs beyond the inference, in process: our JSON endpoint and the Open Inference
Protocol (V2) endpoint against the bare onnxruntime session, in interleaved rounds (each round
runs every path once, so load from elsewhere on the machine falls on all of them alike), as
medians over the rounds.

    python -m benchmarks.serving_overhead      (also step 6 of `make benchmark`)

Targets (issue 11): single image, our JSON p50 at most 1.3x the session's; batches of 256, at
least 0.8x the session's images/s in JSON and 0.9x through the binary V2 path.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import numpy as np

BATCH = 256


def _request(route: str, body: bytes, headers: dict[str, str], params: dict[str, str] | None):
    import azure.functions as func  # noqa: PLC0415 - imported where measured

    return func.HttpRequest(
        "POST", f"http://localhost/api/{route}", headers=headers, body=body, route_params=params
    )


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


def paths(images: np.ndarray) -> dict[str, dict[str, Callable[[], object]]]:
    """Per case (single, batch), each path as a call that does one request."""
    import function_app  # noqa: PLC0415
    from functions.api.blueprint import api_functions  # noqa: PLC0415
    from functions.api.v2_blueprint import v2_functions  # noqa: PLC0415
    from functions.serving.v2_model import MODEL_NAME  # noqa: PLC0415

    ours = api_functions(function_app.services).predict
    v2 = v2_functions(function_app.services).infer
    model = function_app.services.provider.current()
    infer_route, params = f"v2/models/{MODEL_NAME}/infer", {"name": MODEL_NAME}
    json_type = {"Content-Type": "application/json"}

    def handler(function, request) -> Callable[[], object]:
        def call() -> None:
            response = function(request)
            assert response.status_code == 200, response.get_body()[:200]

        return call

    cases = {}
    for case, batch in (("single", images[:1]), ("batch", np.resize(images, (BATCH, 28, 28)))):
        tensor = batch.astype(np.float32).reshape(-1, 28, 28, 1)
        if case == "single":
            ours_body = json.dumps({"pixels": batch[0].ravel().tolist()}).encode()
        else:
            ours_body = json.dumps({"images": [image.ravel().tolist() for image in batch]}).encode()
        cases[case] = {
            "session": lambda model=model, tensor=tensor: model.predict(tensor),
            "ours_json": handler(ours, _request("predict", ours_body, json_type, None)),
            "v2_json": handler(v2, _request(infer_route, *v2_body(batch, binary=False), params)),
            "v2_binary": handler(v2, _request(infer_route, *v2_body(batch, binary=True), params)),
        }
    return cases


def measure(images: np.ndarray, rounds: int, single_calls: int, batch_calls: int) -> dict:
    cases = paths(images)
    for case in cases.values():  # warm-up: first loads, first allocations
        for call in case.values():
            for _ in range(5):
                call()
    single = {name: [] for name in cases["single"]}
    batch = {name: [] for name in cases["batch"]}
    for _ in range(rounds):
        for name, call in cases["single"].items():
            for _ in range(single_calls):
                started = time.perf_counter()
                call()
                single[name].append(time.perf_counter() - started)
        for name, call in cases["batch"].items():
            started = time.perf_counter()
            for _ in range(batch_calls):
                call()
            batch[name].append(BATCH * batch_calls / (time.perf_counter() - started))
    p50 = {name: float(np.median(times)) * 1e3 for name, times in single.items()}
    per_second = {name: float(np.median(rates)) for name, rates in batch.items()}
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
    }


def report(results: dict) -> str:
    p50, rates = results["single_p50_ms"], results["batch_images_per_s"]
    single, batch = results["single_ratio_to_session"], results["batch_ratio_to_session"]
    return "\n".join(
        [
            f"single image p50: session {p50['session']:.3f} ms, ours (JSON) "
            f"{p50['ours_json']:.3f} ms = {single['ours_json']:.2f}x (target <= 1.3x), "
            f"V2 JSON {p50['v2_json']:.3f} ms = {single['v2_json']:.2f}x, "
            f"V2 binary {p50['v2_binary']:.3f} ms = {single['v2_binary']:.2f}x",
            f"batches of {BATCH}: session {rates['session']:,.0f} images/s, ours (JSON) "
            f"{rates['ours_json']:,.0f} = {batch['ours_json']:.2f}x (target >= 0.8x), "
            f"V2 JSON {rates['v2_json']:,.0f} = {batch['v2_json']:.2f}x, "
            f"V2 binary {rates['v2_binary']:,.0f} = {batch['v2_binary']:.2f}x (target >= 0.9x)",
        ]
    )


def main() -> int:
    from benchmarks.serving import digits  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--single-calls", type=int, default=200, help="per path and round")
    parser.add_argument("--batch-calls", type=int, default=3, help="per path and round")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = measure(digits(BATCH), args.rounds, args.single_calls, args.batch_calls)
    print(report(results))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
