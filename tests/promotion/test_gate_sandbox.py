"""The gate runs a candidate only in a child process of its own, with a time and a memory limit,
in an empty directory that is gone before it starts: real models built by code
(tests/bad_models.py), real child processes. Each bad model is refused with its own check and a
reason naming what happened, the app's process neither hangs nor grows, and no trial, however it
ends, leaves anything behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from functions.model_contract import MAX_BATCH, ModelOutputError, UnusableModel
from functions.promotion import sandbox
from functions.promotion.errors import Refusal
from functions.promotion.gate import (
    MAX_MEDIAN_LATENCY_MS,
    MAX_MEMORY_PER_IMAGE_BYTES,
    TRIAL_ADDRESS_SPACE_BYTES,
    GatePolicy,
    Judged,
    TrialLimits,
    judge,
)
from functions.promotion.gate_set import load_gate_set
from functions.serving.loaded_model import load_model
from tests import bad_models
from tests.stack import REPO_ROOT

POLICY = GatePolicy(min_accuracy=0.98, max_regression=0.005, signing_key=None)
# Generous on a loaded two-core machine: an honest trial takes a few seconds.
LIMITS = TrialLimits(timeout_seconds=60, address_space_bytes=TRIAL_ADDRESS_SPACE_BYTES)
SHORT = TrialLimits(timeout_seconds=8, address_space_bytes=TRIAL_ADDRESS_SPACE_BYTES)
SLACK_SECONDS = 30  # beyond a trial's limit: killing and reaping the child, a busy machine


def judged(
    content: bytes, bundled, *, limits=LIMITS, version="cand", **options
) -> Judged | Refusal:
    """The gate's outcome: what it judged of an accepted candidate, or its refusal."""
    try:
        return judge(
            version,
            content,
            {},
            policy=POLICY,
            gate_set=load_gate_set(),
            current=bundled,
            limits=limits,
            **options,
        )
    except Refusal as refusal:
        return refusal


def assert_refused(outcome: Judged | Refusal, check: str, *words: str) -> None:
    assert isinstance(outcome, Refusal), outcome
    assert outcome.check == check, outcome.reason
    for word in words:
        assert word in outcome.reason


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
            bundled.predict(gate_set.images[start : start + MAX_BATCH]).probabilities.argmax(axis=1)
            for start in range(0, len(gate_set.labels), MAX_BATCH)
        ]
    )

    verdict = judged(bad_models.good_model_bytes("cand"), bundled)

    assert isinstance(verdict, Judged), verdict
    answered = verdict.gate_answers.probabilities[: len(gate_set.labels)].argmax(axis=1)
    np.testing.assert_array_equal(answered, in_process)
    figures = verdict.figures
    assert figures["gate_accuracy"] == float(np.mean(in_process == gate_set.labels))
    assert figures["agreement_with_current"] == 1.0
    assert figures["current_version"] == bundled.version
    assert 0 < figures["median_latency_ms"] < MAX_MEDIAN_LATENCY_MS
    assert 0 < figures["memory_per_image_kib"] <= MAX_MEMORY_PER_IMAGE_BYTES / 1024
    assert figures["trial_seconds"] < LIMITS.timeout_seconds


@pytest.mark.parametrize(
    ("build", "words"), bad_models.GRAPH_ATTACKS.values(), ids=bad_models.GRAPH_ATTACKS.keys()
)
def test_a_model_whose_cost_follows_its_pixels_is_refused_before_it_runs(bundled, build, words):
    started = time.monotonic()
    verdict = judged(build("cand"), bundled, limits=SHORT)
    elapsed = time.monotonic() - started

    assert_refused(verdict, "graph", *words)
    assert elapsed < SHORT.timeout_seconds  # the child's start and imports: about 1.5 s here
    assert trials_started_by(os.getpid()) == []


def test_a_cnn_from_another_converter_passes_every_check(bundled):
    verdict = judged(bad_models.hand_built_cnn_model_bytes("cand"), bundled)

    assert isinstance(verdict, Judged), verdict
    assert verdict.figures["agreement_with_current"] == 1.0


def test_a_candidate_that_cannot_tell_a_digit_is_refused(bundled):
    """The gate carries non-digits: a model without a rule (as those made before it) takes
    every one for a digit; one whose rule flags more than 1% of real digits is no better."""
    no_rule = judged(bad_models.with_digit_rule_bytes("cand", None), bundled)
    assert isinstance(no_rule, Refusal)
    assert no_rule.check == "is_digit"
    assert "every one of the gate set's 64 non-digits" in no_rule.reason
    jumpy = judged(bad_models.with_digit_rule_bytes("cand", "not_digit < 0.000001"), bundled)
    assert isinstance(jumpy, Refusal)
    assert (jumpy.check, jumpy.reason[:8]) == ("is_digit", "it says ")
    assert "at most 1% may be" in jumpy.reason


def test_a_candidate_that_tells_digits_from_doodles_records_how_well(bundled):
    by_confidence = judged(bad_models.with_digit_rule_bytes("cand", "confidence >= 0.5"), bundled)
    assert isinstance(by_confidence, Judged), by_confidence
    assert by_confidence.figures["gate_digits_flagged"] <= 0.01
    assert by_confidence.figures["gate_negatives_flagged"] > 0
    bundled_rule = judged(bad_models.good_model_bytes("cand"), bundled)
    assert bundled_rule.figures["gate_digits_flagged"] <= 0.01
    assert bundled_rule.figures["gate_negatives_flagged"] >= 0.9


def test_a_not_digit_that_depends_on_the_batch_is_refused(bundled):
    refusal = judged(bad_models.not_digit_mixer_model_bytes("cand"), bundled)
    assert isinstance(refusal, Refusal), refusal
    assert refusal.check == "batch"
    assert "answers must not depend on the batch" in refusal.reason


def test_a_malformed_rule_breaks_the_contract(bundled):
    for rule in ("not_digit < 2", "not_digit<0.5", "maybe", "confidence >= 0"):
        refusal = judged(bad_models.with_digit_rule_bytes("cand", rule), bundled)
        assert isinstance(refusal, Refusal), rule
        assert refusal.check == "contract", (rule, refusal.reason)


JUDGE_A_MODEL_THAT_TAKES_MINUTES = """
from functions.promotion.gate import GatePolicy, judge
from functions.promotion.gate_set import load_gate_set
from tests.bad_models import slow_model_bytes

policy = GatePolicy(min_accuracy=0.98, max_regression=0.005, signing_key=None)
judge("hang", slow_model_bytes("hang", 120.0), {}, policy=policy,
      gate_set=load_gate_set(), current=None)
"""


def test_a_trial_ends_at_once_with_the_app_process_that_started_it_and_leaves_nothing():
    before = trial_entries()
    app = subprocess.Popen(
        [sys.executable, "-c", JUDGE_A_MODEL_THAT_TAKES_MINUTES], cwd=REPO_ROOT, env=os.environ
    )
    try:
        deadline = time.monotonic() + 120
        while not (trials := trials_started_by(app.pid)):
            assert app.poll() is None, "the app's process ended before its trial started"
            assert time.monotonic() < deadline, "no trial started"
            time.sleep(0.2)
        (trial,) = trials
        assert is_running(trial)
        # Its working directory is already gone, its files are memory files: nothing on disk.
        assert os.readlink(f"/proc/{trial}/cwd").endswith("(deleted)")
        assert trial_entries() == before
    finally:
        app.kill()  # as a host recycling the instance would, mid-trial
        app.wait(timeout=30)

    deadline = time.monotonic() + 20  # well before its own 30 s time limit
    while is_running(trial):
        assert time.monotonic() < deadline, f"trial {trial} outlived the app's process"
        time.sleep(0.1)
    # Killed mid-trial, neither process could clean up: there was nothing on disk to clean.
    assert trial_entries() == before


def trial_directories_of(pid: int) -> list[Path]:
    return sorted(Path(tempfile.gettempdir()).glob(f"{sandbox.DIRECTORY_PREFIX}{pid}-*"))


def trial_entries() -> set[Path]:
    """Everything in the temporary directory that a trial could have left there (under its
    prefix), whoever's: earlier versions of the sandbox left whole directories behind."""
    return set(Path(tempfile.gettempdir()).glob(f"{sandbox.DIRECTORY_PREFIX}*"))


def test_a_slow_model_is_refused_after_one_run_not_after_every_run(bundled):
    started = time.monotonic()
    verdict = judged(bad_models.slow_model_bytes("cand", 3.0), bundled)

    assert_refused(verdict, "latency", "one single-image inference took")
    assert time.monotonic() - started < LIMITS.timeout_seconds  # not 30 runs of 3 s


def test_a_slow_model_that_outlasts_the_trial_is_killed_and_refused_by_the_timeout(bundled):
    started = time.monotonic()
    verdict = judged(bad_models.slow_model_bytes("cand", 30.0), bundled, limits=SHORT)
    elapsed = time.monotonic() - started

    assert_refused(verdict, "timeout", "did not finish within 8 s", "killed")
    assert SHORT.timeout_seconds <= elapsed < SHORT.timeout_seconds + SLACK_SECONDS
    assert trials_started_by(os.getpid()) == []  # killed and reaped: nothing spins on
    assert trial_directories_of(os.getpid()) == []


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


def test_a_model_that_lies_about_other_batch_sizes_is_refused_for_what_it_computes(bundled):
    # It must compare the batch size and branch: the graph rule refuses that before it runs.
    content = bad_models.batch_liar_model_bytes("cand")

    verdict = judged(content, bundled)

    assert_refused(verdict, "graph", "(Equal, unnamed)")


def test_a_model_whose_rows_depend_on_the_batch_is_refused(bundled):
    verdict = judged(bad_models.batch_mixer_model_bytes("cand"), bundled)

    assert_refused(verdict, "batch", "a batch of 2", "answers must not depend on the batch")


def test_a_rollback_skips_the_quality_gates_but_not_the_trial(bundled):
    verdict = judged(bad_models.batch_mixer_model_bytes("cand"), bundled, accepted_before=True)

    assert_refused(verdict, "batch")
    verdict = judged(bad_models.cue_loop_model_bytes("cand"), bundled, accepted_before=True)

    assert_refused(verdict, "graph")


def test_serving_refuses_an_answer_with_the_wrong_number_of_rows():
    # Warm-up uses batches of 1 and 8, which the liar answers honestly: it loads.
    model = load_model(bad_models.batch_liar_model_bytes("liar"), source="storage")
    images = load_gate_set().images

    assert model.predict(images[:8]).probabilities.shape == (8, 10)
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


# A stand-in trial that reports what it can see, as a refusal reason the test can read.
SPY = """
import json, os
settings = json.loads(os.read(int(os.environ["MODEL_TRIAL_SETTINGS_FD"]), 1 << 20))
try:
    cwd = os.getcwd()
except OSError as error:
    cwd = f"unreachable: {error.strerror}"
try:
    open("planted.txt", "w")
    planted = "written"
except OSError as error:
    planted = error.strerror
seen = {
    "cwd": cwd,
    "cwd_link": os.readlink("/proc/self/cwd"),
    "files": sorted(os.listdir(".")),
    "planted": planted,
    "env": sorted(os.environ),
    "candidate_bytes": len(os.pread(settings["files"]["candidate"], 1 << 25, 0)),
    "descriptors": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
    "settings": sorted(settings["files"]),
}
report = {"accepted": False, "check": "contract", "reason": json.dumps(seen)}
os.write(settings["files"]["report"], json.dumps(report).encode())
"""


def test_the_child_sees_neither_the_apps_directory_nor_its_secrets(bundled, monkeypatch, tmp_path):
    monkeypatch.setenv("MODEL_SIGNING_KEY", "a secret")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app-file.txt").write_text("the app's own file")
    monkeypatch.setattr(sandbox, "TRIAL_COMMAND", (sys.executable, "-c", SPY))
    content = bad_models.good_model_bytes("cand")

    verdict = judged(content, bundled)

    seen = json.loads(verdict.reason)
    # An empty working directory, removed before the child ran: nothing is there, nothing can
    # be put there, no relative path leads anywhere.
    assert seen["cwd"] == "unreachable: No such file or directory"
    assert seen["cwd_link"].endswith("(deleted)")
    assert Path(seen["cwd_link"].removesuffix(" (deleted)")).name.startswith(
        f"{sandbox.DIRECTORY_PREFIX}{os.getpid()}-"
    )
    assert seen["files"] == []
    assert seen["planted"] == "No such file or directory"
    assert not (tmp_path / "planted.txt").exists()
    assert "MODEL_SIGNING_KEY" not in seen["env"]
    # Its inputs and outputs: memory files it inherited, and nothing else beyond stdio.
    assert seen["candidate_bytes"] == len(content)
    assert seen["settings"] == sorted(sandbox.TRIAL_FILES)
    assert len(seen["descriptors"]) == 3 + len(sandbox.TRIAL_FILES) + 1 + 1  # + settings, listdir
    assert trial_directories_of(os.getpid()) == []


@pytest.mark.parametrize("ending", ["accepted", "refused", "timeout", "crash"])
def test_a_trial_leaves_nothing_behind_however_it_ends(bundled, monkeypatch, ending):
    content = bad_models.good_model_bytes("cand")
    limits = LIMITS
    if ending == "refused":
        content = bad_models.cue_loop_model_bytes("cand")
    elif ending == "timeout":
        monkeypatch.setattr(sandbox, "TRIAL_COMMAND", (sys.executable, "-c", "while True: pass"))
        limits = TrialLimits(timeout_seconds=2, address_space_bytes=TRIAL_ADDRESS_SPACE_BYTES)
    elif ending == "crash":
        monkeypatch.setattr(
            sandbox, "TRIAL_COMMAND", (sys.executable, "-c", "import os; os.abort()")
        )
    before = trial_entries()
    descriptors = set(os.listdir("/proc/self/fd"))

    verdict = judged(content, bundled, limits=limits)

    assert isinstance(verdict, Judged) == (ending == "accepted"), verdict
    assert trial_entries() == before
    assert set(os.listdir("/proc/self/fd")) <= descriptors  # every memory file closed


def test_a_directory_left_by_a_killed_app_process_is_removed_by_the_next_trial(bundled):
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = int(ended.stdout)  # a process id that no process has now
    root = Path(tempfile.gettempdir())
    stale = root / f"{sandbox.DIRECTORY_PREFIX}{dead}-left"
    live = root / f"{sandbox.DIRECTORY_PREFIX}{os.getppid()}-in-use"
    not_empty = root / f"{sandbox.DIRECTORY_PREFIX}{dead}-not-empty"
    for path in (stale, live, not_empty):
        path.mkdir()
    (not_empty / "someone's.txt").write_text("not the trial's")
    try:
        verdict = judged(bad_models.cue_loop_model_bytes("cand"), bundled)

        assert_refused(verdict, "graph")
        assert not stale.exists()
        assert live.exists()  # its app process still runs
        assert (not_empty / "someone's.txt").exists()  # the sweep removes empty ones only
    finally:
        for path in (live, not_empty):
            if path.exists():
                for child in path.iterdir():
                    child.unlink()
                path.rmdir()


def clear_peak_memory() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def peak_memory_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/self/status")
