"""A candidate model's trial, in a child process of its own (started by sandbox.py): everything
that touches the candidate's bytes (the protobuf parser, the ONNX checker, onnxruntime, every
inference) happens here, under the limits the parent chose. A model that never ends, allocates
without bound or crashes the runtime takes down this process only.

Run as `python -B -P -m functions.promotion.trial` in an empty working directory that is
already removed, with the candidate, the gate set's images and the settings in memory files it
inherits (the environment names the settings' descriptor, the settings the others); it writes
its report, its answers on the gate set and its log into memory files too.

The order of the checks: the file parses (`loads`), keeps no data outside it (`external_data`),
passes onnx.checker (`checker`), declares the contract's input and output (`contract`), and its
graph keeps to the graph rule (`graph`: functions/model_contract.py), all before onnxruntime sees
a byte of it; then onnxruntime loads it and runs it (`contract`, `latency`, `batch`, `memory`).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

from functions.model_contract import (
    INPUT_SHAPE,
    NOT_DIGIT_NAME,
    NUM_CLASSES,
    OUTPUT_NAME,
    VERSION_KEY,
    ModelContractError,
    ModelGraphError,
    ModelLoadError,
    ModelOutputError,
    ModelOutputs,
    check_declared_interface,
    check_graph,
    check_not_digit,
    check_probabilities,
    digit_rule,
    missing_metadata,
    open_session,
    output_names,
    run_inference,
)
from functions.promotion.errors import Refusal
from functions.promotion.sandbox import (
    ANSWERS_FILE,
    CANDIDATE_FILE,
    GATE_IMAGES_FILE,
    REPORT_FILE,
    SETTINGS_FD_VARIABLE,
)

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def main() -> int:
    with open(int(os.environ[SETTINGS_FD_VARIABLE]), "rb") as settings_file:
        settings = json.loads(settings_file.read())
    die_with_parent(settings["parent_pid"])
    limit_resources(
        settings["address_space_bytes"], settings["cpu_seconds"], settings["written_bytes"]
    )
    files: dict[str, int] = settings["files"]
    try:
        report = run_trial(files, settings)
    except Refusal as refusal:
        report = {"accepted": False, "check": refusal.check, "reason": refusal.reason}
    # The parent reads the report only once this process has exited with status 0: never half.
    with open(files[REPORT_FILE], "w", closefd=False) as out:
        out.write(json.dumps(report))
    return 0


def die_with_parent(parent_pid: int) -> None:
    """If the app's process dies mid-trial (killed, recycled), the trial ends with it at once,
    instead of spinning on until its CPU cap."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent was gone before the line above
        os._exit(1)


def limit_resources(address_space_bytes: int, cpu_seconds: int, written_bytes: int) -> None:
    """The memory cap makes an oversized allocation fail here, in the child, instead of
    growing the host; the CPU cap ends a spinning child even if its parent is gone; the file
    size cap bounds what it writes into its memory files (the log included)."""
    resource.setrlimit(resource.RLIMIT_AS, (address_space_bytes, address_space_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (written_bytes, written_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_trial(files: dict[str, int], settings: dict) -> dict:
    with open(files[CANDIDATE_FILE], "rb", closefd=False) as candidate:
        content = candidate.read()
    check_structure(check_self_contained(content))  # the parsed model is dropped here
    session = open_checked_session(content)
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    check_metadata(metadata, settings["version"])
    figures: dict[str, object] = {}
    figures["median_latency_ms"] = check_latency(session, settings)
    with open(files[GATE_IMAGES_FILE], "rb", closefd=False) as images:
        gate_images = np.load(images, allow_pickle=False)
    figures["memory_per_image_kib"] = check_batches(session, gate_images, settings)
    probabilities, is_digit = gate_set_answers(session, metadata, gate_images, settings)
    with open(files[ANSWERS_FILE], "wb", closefd=False) as out:
        np.savez(out, probabilities=probabilities, is_digit=is_digit)
    figures["trial_peak_mib"] = round(peak_memory_bytes() / 2**20, 1)
    return {"accepted": True, "figures": figures}


def check_self_contained(content: bytes) -> onnx.ModelProto:
    """One self-describing file (contracts.md section 1): no tensor anywhere may keep its data
    outside it. Checked before onnxruntime sees the bytes, which would read such data relative
    to the working directory. Returns the parsed model."""
    try:
        model = onnx.load_from_string(content)
    except Exception as error:  # protobuf raises DecodeError and others for garbage
        raise Refusal("loads", f"the file is not an ONNX model: {error}") from error
    for where, tensor in tensors_of(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            location = next(
                (entry.value for entry in tensor.external_data if entry.key == "location"), "?"
            )
            raise Refusal(
                "external_data",
                f"tensor {tensor.name!r} in {where} keeps its data in another file "
                f"({location!r}); a model is one self-describing file",
            )
    try:
        onnx.checker.check_model(model)
    except Exception as error:  # onnx.checker.ValidationError and its C++ relatives
        raise Refusal("checker", f"the ONNX checker refuses the file: {error}") from error
    return model


def check_structure(model: onnx.ModelProto) -> None:
    """The contract's interface as the file declares it, then the graph rule: no control flow,
    no randomness, only the allowed operators, and every size set by the input's shape alone, so
    that what the trial measures holds for every input (functions/model_contract.py)."""
    try:
        check_declared_interface(model)
    except ModelContractError as error:
        raise Refusal("contract", str(error)) from error
    try:
        check_graph(model)
    except ModelGraphError as error:
        raise Refusal("graph", str(error)) from error


def tensors_of(model: onnx.ModelProto):
    """(where, tensor) for every tensor the file holds: initializers, sparse initializers and
    node attributes of the main graph, every subgraph (Loop, If, Scan bodies; GRAPH and GRAPHS
    attributes), local functions and training graphs."""
    graphs = [("the main graph", model.graph)]
    graphs += [
        (f"training graph {info_index}", graph)
        for info_index, info in enumerate(model.training_info)
        for graph in (info.initialization, info.algorithm)
    ]
    for where, graph in graphs:
        yield from graph_tensors(graph, where)
    for function in model.functions:
        for node in function.node:
            yield from node_tensors(node, f"function {function.name!r}")


def graph_tensors(graph: onnx.GraphProto, where: str):
    for tensor in graph.initializer:
        yield where, tensor
    for sparse in graph.sparse_initializer:
        yield where, sparse.values
        yield where, sparse.indices
    for node in graph.node:
        yield from node_tensors(node, where)


def node_tensors(node: onnx.NodeProto, where: str):
    here = f"node {node.name or node.op_type!r} of {where}"
    for attribute in node.attribute:
        yield from ((here, tensor) for tensor in (attribute.t, *attribute.tensors))
        for sparse in (attribute.sparse_tensor, *attribute.sparse_tensors):
            yield here, sparse.values
            yield here, sparse.indices
        for graph in (attribute.g, *attribute.graphs):
            yield from graph_tensors(graph, f"a subgraph of {here}")


def open_checked_session(content: bytes) -> ort.InferenceSession:
    try:
        return open_session(content)
    except ModelLoadError as error:
        # Judged by onnxruntime's own error: an allocation the cap refused is a memory refusal.
        cause = error.__cause__ or error
        raise refusal_for("loads", "onnxruntime cannot load the file", cause) from error
    except ModelContractError as error:
        raise Refusal("contract", str(error)) from error


def check_metadata(metadata: dict[str, str], version: str) -> None:
    missing = missing_metadata(metadata)
    if missing:
        raise Refusal("contract", f"metadata_props lack {', '.join(missing)}")
    if metadata[VERSION_KEY] != version:
        raise Refusal(
            "contract",
            f"the file's metadata says version {metadata[VERSION_KEY]!r}, its name {version!r}",
        )


def check_latency(session: ort.InferenceSession, settings: dict) -> float:
    """Median single-image time. Comes first of the runs, and gives up as soon as the answer is
    known, so that a slow model is refused in seconds rather than after every run."""
    image = np.zeros((1, *INPUT_SHAPE), dtype=np.float32)
    bound_ms, runs = settings["max_median_latency_ms"], settings["latency_runs"]
    longest_run = settings["max_single_run_seconds"]
    timings_ms = []
    for run in range(runs + 1):  # the first run allocates buffers: not counted
        started = time.perf_counter()
        infer(session, image, "contract")
        elapsed = time.perf_counter() - started
        if elapsed > longest_run:
            raise Refusal(
                "latency",
                f"one single-image inference took {elapsed:.1f} s (at most {longest_run} s for "
                f"one run; the median must be under {bound_ms} ms)",
            )
        if run:
            timings_ms.append(elapsed * 1e3)
        if sum(timing > bound_ms for timing in timings_ms) > runs // 2:
            break  # more than half the runs are over the bound: so is the median
    median_ms = float(np.median(timings_ms))
    if median_ms > bound_ms:
        raise Refusal(
            "latency", f"median single-image inference {median_ms:.1f} ms is over {bound_ms} ms"
        )
    return round(median_ms, 3)


def check_batches(session: ort.InferenceSession, images: np.ndarray, settings: dict) -> float:
    """Batch sizes the serving path treats like any other (odd ones, and the largest the API
    allows): each must answer one row of 10 per image (and one not_digit), and each image's
    answer must be the one it gets alone. Also the memory a full batch costs per image. Returns
    that, in KiB."""
    sizes, tolerance = settings["batch_sizes"], settings["batch_row_tolerance"]
    largest = max(sizes)
    sample = images[:largest]
    if len(sample) < largest:  # a small gate set: repeat it up to the largest batch
        sample = np.resize(images, (largest, *INPUT_SHAPE)).astype(np.float32)
    compared = max(size for size in sizes if size < largest)  # these images also run alone
    alone = np.concatenate(
        [answer_rows(infer(session, sample[i : i + 1], "contract"), 1) for i in range(compared)]
    )
    per_image_kib = 0.0
    for size in sorted(sizes):
        before = peak_memory_bytes()
        outputs = infer(session, sample[:size], "contract")
        if size == largest:
            per_image_kib = (peak_memory_bytes() - before) / size / 1024
        rows = answer_rows(outputs, size)
        if not np.all(np.isfinite(rows)):
            raise Refusal("contract", "the output holds NaN or infinite values")
        shared = min(size, compared)
        difference = float(np.max(np.abs(rows[:shared] - alone[:shared])))
        if not difference <= tolerance:  # NaN compares false: a NaN alone is a difference too
            raise Refusal(
                "batch",
                f"in a batch of {size}, an image's answer differs by {difference:.4g} from its "
                f"answer alone (at most {tolerance}): answers must not depend on the batch",
            )
    bound_kib = settings["max_memory_per_image_bytes"] / 1024
    if per_image_kib > bound_kib:
        raise Refusal(
            "memory",
            f"a batch of {largest} images raised peak memory by {per_image_kib:.0f} KiB per "
            f"image; at most {bound_kib:.0f} KiB is allowed",
        )
    return round(per_image_kib, 1)


def answer_rows(outputs: ModelOutputs, size: int) -> np.ndarray:
    """A batch's answer as one row per image: its probabilities, then its not_digit where the
    model has it. Refusal (`batch`) for an output of another shape than `size` images need."""
    expected = {OUTPUT_NAME: (size, NUM_CLASSES), NOT_DIGIT_NAME: (size,)}
    answered = {OUTPUT_NAME: outputs.probabilities, NOT_DIGIT_NAME: outputs.not_digit}
    for name, values in answered.items():
        if values is not None and values.shape != expected[name]:
            raise Refusal(
                "batch",
                f"a batch of {size} image(s) was answered with a {name} of shape "
                f"{list(values.shape)}; expected {list(expected[name])}",
            )
    if outputs.not_digit is None:
        return outputs.probabilities
    return np.hstack([outputs.probabilities, outputs.not_digit[:, np.newaxis]])


def gate_set_answers(
    session: ort.InferenceSession, metadata: dict[str, str], images: np.ndarray, settings: dict
) -> tuple[np.ndarray, np.ndarray]:
    """The gate set in batches no larger than serving's, checked as an answer must be: the
    probabilities, and whether each image is a digit by the rule the model declares."""
    names = output_names(session)
    try:
        rule = digit_rule(metadata, names)
    except ModelContractError as error:
        raise Refusal("contract", str(error)) from error
    chunk = max(settings["batch_sizes"])
    outputs = [
        infer(session, images[start : start + chunk], "contract")
        for start in range(0, len(images), chunk)
    ]
    probabilities = np.concatenate([output.probabilities for output in outputs])
    not_digit = np.concatenate([output.not_digit for output in outputs]) if len(names) > 1 else None
    try:  # the check serving makes of every answer
        check_probabilities(probabilities, len(images))
        if not_digit is not None:
            check_not_digit(not_digit, len(images))
    except ModelOutputError as error:
        raise Refusal("contract", f"{error} (logits need a softmax in the graph)") from None
    if rule is None:
        return probabilities.astype(np.float32), np.ones(len(images), dtype=bool)
    return probabilities.astype(np.float32), rule.is_digit(probabilities, not_digit)


def infer(
    session: ort.InferenceSession,
    images: np.ndarray,
    check: str,
) -> ModelOutputs:
    try:
        return run_inference(session, images)
    except Exception as error:  # onnxruntime raises its own types for shape and type errors
        raise refusal_for(
            check, f"inference on a batch of {len(images)} image(s) failed", error
        ) from error


def refusal_for(check: str, what: str, error: BaseException) -> Refusal:
    """An allocation that the memory cap refused is a memory refusal, whatever step it hit."""
    message = str(error).lower()
    if isinstance(error, MemoryError) or "allocat" in message or "bad_alloc" in message:
        return Refusal("memory", f"{what}: it needs more memory than the trial allows")
    return Refusal(check, f"{what}: {error}")


def peak_memory_bytes() -> int:
    """This process's peak resident memory so far (VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # no /proc: Linux's KiB


if __name__ == "__main__":
    sys.exit(main())
