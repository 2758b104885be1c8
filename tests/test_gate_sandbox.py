"""The gate runs a candidate only in a child process of its own, with a time and a memory limit,
in an empty private directory: real models built by code (tests/bad_models.py), real child
processes. Each bad model is refused with its own check and a reason naming what happened, and
the app's process neither hangs nor grows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from functions.promotion import sandbox
from functions.promotion.gate import (
    MAX_MEDIAN_LATENCY_MS,
    MAX_MEMORY_PER_IMAGE_BYTES,
    TRIAL_ADDRESS_SPACE_BYTES,
    GatePolicy,
    TrialLimits,
    Verdict,
    judge,
)
from functions.promotion.gate_set import load_gate_set
from functions.serving.inputs import MAX_BATCH
from functions.serving.loaded_model import ModelOutputError, UnusableModel, load_model
from tests import bad_models
from tests.stack import REPO_ROOT

POLICY = GatePolicy(min_accuracy=0.98, max_regression=0.005, signing_key=None)
# Generous on a loaded two-core machine: an honest trial takes a few seconds.
LIMITS = TrialLimits(timeout_seconds=60, address_space_bytes=TRIAL_ADDRESS_SPACE_BYTES)
SHORT = TrialLimits(timeout_seconds=8, address_space_bytes=TRIAL_ADDRESS_SPACE_BYTES)
SLACK_SECONDS = 30  # beyond a trial's limit: killing and reaping the child, a busy machine


def judged(content: bytes, bundled, *, limits=LIMITS, version="cand", **options) -> Verdict:
    return judge(
        f"{version}.onnx",
        content,
        {},
        policy=POLICY,
        gate_set=load_gate_set(),
        current=bundled,
        limits=limits,
        **options,
    )


def assert_refused(verdict: Verdict, check: str, *words: str) -> None:
    assert (verdict.accepted, verdict.failed_check) == (False, check), verdict.reason
    for word in words:
        assert word in verdict.reason


def trials_started_by(parent: int) -> list[int]:
    """Live child processes of `parent` that run a trial, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue  # gone meanwhile
        alive = fields[0] != "Z"
        if alive and int(fields[1]) == parent and b"functions.promotion.trial" in command:
            found.append(int(stat.parent.name))
    return found


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status waits to be collected


def test_the_bundled_network_is_accepted_with_the_figures_it_had_in_process(bundled):
    gate_set = load_gate_set()
    in_process = np.concatenate(
        [
            bundled.predict(gate_set.images[start : start + MAX_BATCH]).argmax(axis=1)
            for start in range(0, len(gate_set.labels), MAX_BATCH)
        ]
    )

    verdict = judged(bad_models.good_model_bytes("cand"), bundled)

    assert verdict.accepted, verdict.reason
    np.testing.assert_array_equal(verdict.gate_predictions, in_process)
    figures = verdict.figures
    assert figures["gate_accuracy"] == float(np.mean(in_process == gate_set.labels))
    assert figures["agreement_with_current"] == 1.0
    assert figures["current_version"] == bundled.version
    assert 0 < figures["median_latency_ms"] < MAX_MEDIAN_LATENCY_MS
    assert 0 < figures["memory_per_image_kib"] <= MAX_MEMORY_PER_IMAGE_BYTES / 1024
    assert figures["trial_seconds"] < LIMITS.timeout_seconds


def test_a_model_that_never_ends_is_killed_and_refused_by_the_timeout(bundled):
    started = time.monotonic()
    verdict = judged(bad_models.never_ending_model_bytes("cand"), bundled, limits=SHORT)
    elapsed = time.monotonic() - started

    assert_refused(verdict, "timeout", "did not finish within 8 s", "killed")
    assert SHORT.timeout_seconds <= elapsed < SHORT.timeout_seconds + SLACK_SECONDS
    assert trials_started_by(os.getpid()) == []  # killed and reaped: nothing spins on


JUDGE_A_MODEL_THAT_NEVER_ENDS = """
from functions.promotion.gate import GatePolicy, judge
from functions.promotion.gate_set import load_gate_set
from tests.bad_models import never_ending_model_bytes

policy = GatePolicy(min_accuracy=0.98, max_regression=0.005, signing_key=None)
judge("hang.onnx", never_ending_model_bytes("hang"), {}, policy=policy,
      gate_set=load_gate_set(), current=None)
"""


def test_a_trial_ends_at_once_with_the_app_process_that_started_it():
    app = subprocess.Popen(
        [sys.executable, "-c", JUDGE_A_MODEL_THAT_NEVER_ENDS], cwd=REPO_ROOT, env=os.environ
    )
    try:
        deadline = time.monotonic() + 120
        while not (trials := trials_started_by(app.pid)):
            assert app.poll() is None, "the app's process ended before its trial started"
            assert time.monotonic() < deadline, "no trial started"
            time.sleep(0.2)
        (trial,) = trials
        assert is_running(trial)
    finally:
        app.kill()  # as a host recycling the instance would, mid-trial
        app.wait(timeout=30)

    deadline = time.monotonic() + 20  # well before its own 30 s time limit
    while is_running(trial):
        assert time.monotonic() < deadline, f"trial {trial} outlived the app's process"
        time.sleep(0.1)


def test_a_slow_model_is_refused_after_one_run_not_after_every_run(bundled):
    started = time.monotonic()
    verdict = judged(bad_models.slow_model_bytes("cand", 3.0), bundled)

    assert_refused(verdict, "latency", "one single-image inference took")
    assert time.monotonic() - started < LIMITS.timeout_seconds  # not 30 runs of 3 s


def test_a_slow_model_that_outlasts_the_trial_is_refused_by_the_timeout(bundled):
    verdict = judged(bad_models.slow_model_bytes("cand", 30.0), bundled, limits=SHORT)

    assert_refused(verdict, "timeout", "killed")


def test_an_allocation_bomb_is_refused_for_memory_without_growing_the_app(bundled):
    clear_peak_memory()
    before = peak_memory_mib()

    verdict = judged(bad_models.allocation_bomb_model_bytes("cand"), bundled)

    assert_refused(verdict, "memory", "batch of 256", "more memory than the trial allows")
    # 4 MiB per image: 1 GiB for a full batch, 4 GiB for the gate set had it run in-process.
    assert peak_memory_mib() - before < 200


def test_a_model_over_the_memory_bound_per_image_is_refused(bundled):
    # 2 MiB per image: a full batch fits the trial's address space, but not the bound.
    content = bad_models.allocation_bomb_model_bytes("cand", elements_per_image=1 << 19)

    verdict = judged(content, bundled)

    assert_refused(verdict, "memory", "KiB per image", f"{MAX_MEMORY_PER_IMAGE_BYTES // 1024}")


@pytest.mark.parametrize("where", ["initializer", "subgraph"])
def test_external_data_is_refused_even_when_its_file_is_at_hand(
    bundled, tmp_path, monkeypatch, where
):
    monkeypatch.chdir(tmp_path)  # as the app's working directory, holding the weights
    (tmp_path / "weights.bin").write_bytes(bad_models.external_data_payload())
    content = bad_models.external_data_model_bytes("cand", "weights.bin", where=where)
    # The attack is real: onnxruntime, given the bytes here, reads the weights from this
    # directory and runs the bundled network, accuracy and all.
    session = ort.InferenceSession(content, providers=["CPUExecutionProvider"])
    probabilities = session.run(None, {"pixels": load_gate_set().images[:8]})[0]
    assert probabilities.shape == (8, 10)

    verdict = judged(content, bundled)

    assert_refused(verdict, "external_data", "weights.bin", "one self-describing file")


def test_a_file_the_onnx_checker_refuses_is_refused_before_onnxruntime_sees_it(bundled):
    model = onnx.load_from_string(bad_models.good_model_bytes("cand"))
    model.graph.node.append(onnx.helper.make_node("NoSuchOperator", ["pixels"], ["unused"]))

    verdict = judged(model.SerializeToString(), bundled)

    assert_refused(verdict, "checker", "NoSuchOperator")


def test_a_model_that_lies_about_other_batch_sizes_is_refused(bundled):
    content = bad_models.batch_liar_model_bytes("cand")

    verdict = judged(content, bundled)

    assert_refused(verdict, "batch", "a batch of 2 image(s)", "[1, 10]")


def test_a_model_whose_rows_depend_on_the_batch_is_refused(bundled):
    verdict = judged(bad_models.batch_mixer_model_bytes("cand"), bundled)

    assert_refused(verdict, "batch", "a batch of 2", "rows must not depend on the batch")


def test_a_rollback_skips_the_quality_gates_but_not_the_trial(bundled):
    verdict = judged(bad_models.batch_liar_model_bytes("cand"), bundled, previously_accepted=True)

    assert_refused(verdict, "batch")


def test_serving_refuses_an_answer_with_the_wrong_number_of_rows():
    # Warm-up uses batches of 1 and 8, which the liar answers honestly: it loads.
    model = load_model(bad_models.batch_liar_model_bytes("liar"), source="storage")
    images = load_gate_set().images

    assert model.predict(images[:8]).shape == (8, 10)
    with pytest.raises(ModelOutputError, match=r"answered 2 image\(s\) .* shape \[1, 10\]"):
        model.predict(images[:2])
    assert issubclass(ModelOutputError, UnusableModel)


def test_a_crashing_child_is_a_refusal_that_says_how_it_ended(bundled, monkeypatch):
    monkeypatch.setattr(
        sandbox, "TRIAL_COMMAND", (sys.executable, "-c", "print('dying'); import os; os.abort()")
    )

    verdict = judged(bad_models.good_model_bytes("cand"), bundled)

    assert_refused(verdict, "sandbox", "SIGABRT", "dying")


def test_a_child_that_exits_without_a_report_is_a_refusal(bundled, monkeypatch):
    monkeypatch.setattr(sandbox, "TRIAL_COMMAND", (sys.executable, "-c", "raise SystemExit(3)"))

    verdict = judged(bad_models.good_model_bytes("cand"), bundled)

    assert_refused(verdict, "sandbox", "status 3")


def test_the_child_sees_neither_the_apps_directory_nor_its_secrets(bundled, monkeypatch, tmp_path):
    monkeypatch.setenv("MODEL_SIGNING_KEY", "a secret")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app-file.txt").write_text("the app's own file")
    # A stand-in trial that reports what it can see, as a refusal reason the test can read.
    spy = (
        "import json, os; json.dump({'accepted': False, 'check': 'contract', 'reason': "
        "json.dumps({'cwd': os.getcwd(), 'files': sorted(os.listdir()), "
        "'env': sorted(os.environ)})}, open('report.json', 'w'))"
    )
    monkeypatch.setattr(sandbox, "TRIAL_COMMAND", (sys.executable, "-c", spy))

    verdict = judged(bad_models.good_model_bytes("cand"), bundled)

    seen = json.loads(verdict.reason)
    assert Path(seen["cwd"]) != tmp_path
    assert "app-file.txt" not in seen["files"]
    assert "candidate.onnx" in seen["files"]
    assert "MODEL_SIGNING_KEY" not in seen["env"]
    assert not Path(seen["cwd"]).exists()  # the private directory is gone afterwards


def clear_peak_memory() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def peak_memory_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/self/status")
