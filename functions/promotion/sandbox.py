"""Running a candidate's trial (trial.py) in a child process, and reading back its report: a
private empty working directory, a minimal environment, limits on time and memory, and a kill
of the whole process group when the time is up. Whatever the child does, the caller gets either
a report or a `TrialFailure` that says what happened, within the time limit."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

APP_ROOT = Path(__file__).resolve().parent.parent.parent
TRIAL_COMMAND = (sys.executable, "-B", "-m", "functions.promotion.trial")
# The private directory's files, shared with trial.py (which imports them from here, so that
# the app itself never imports onnx).
CANDIDATE_FILE = "candidate.onnx"
GATE_IMAGES_FILE = "gate_images.npy"
SETTINGS_FILE = "settings.json"
REPORT_FILE = "report.json"
PROBABILITIES_FILE = "gate_probabilities.npy"
MAX_REPORT_BYTES = 64 * 1024
LOG_TAIL_BYTES = 600
KILL_GRACE_SECONDS = 5.0
CPU_SECONDS_MARGIN = 5  # the child's own CPU cap sits just above the wall-clock limit
# An instance has 2 GB and a trial may take 1 GiB: a second drop (an event and the reconciler at
# once) waits for the first trial, which ends within its own time limit.
ONE_TRIAL_AT_A_TIME = threading.Lock()
TRIAL_FIGURES = ("median_latency_ms", "memory_per_image_kib", "trial_peak_mib")
# The child's failures it reports itself; anything else it names is treated as a crash.
KNOWN_CHECKS = frozenset(
    {"loads", "external_data", "checker", "contract", "latency", "batch", "memory"}
)


@dataclass(frozen=True)
class TrialLimits:
    timeout_seconds: float
    address_space_bytes: int


@dataclass(frozen=True)
class TrialReport:
    figures: dict[str, object]
    gate_probabilities: np.ndarray  # (n, 10) float32, the gate set's images in order
    seconds: float


class TrialFailure(Exception):
    """The trial refused the candidate (a check), or the child did not finish (timeout,
    memory, sandbox)."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"{check}: {reason}")
        self.check, self.reason = check, reason


def run_trial(
    content: bytes, gate_images: np.ndarray, settings: dict[str, object], limits: TrialLimits
) -> TrialReport:
    with ONE_TRIAL_AT_A_TIME, tempfile.TemporaryDirectory(prefix="model-trial-") as private:
        workdir = Path(private)
        (workdir / CANDIDATE_FILE).write_bytes(content)
        np.save(workdir / GATE_IMAGES_FILE, gate_images, allow_pickle=False)
        (workdir / SETTINGS_FILE).write_text(
            json.dumps(
                {
                    **settings,
                    "parent_pid": os.getpid(),
                    "address_space_bytes": limits.address_space_bytes,
                    "cpu_seconds": int(limits.timeout_seconds) + CPU_SECONDS_MARGIN,
                }
            )
        )
        started = time.monotonic()
        returncode = _run_child(workdir, limits)
        seconds = round(time.monotonic() - started, 3)
        report = _read_report(workdir, returncode, limits)
        if not report.get("accepted"):
            raise TrialFailure(str(report["check"]), str(report["reason"])[:2000])
        probabilities = _read_probabilities(workdir, len(gate_images))
        return TrialReport(
            figures=_figures_of(report), gate_probabilities=probabilities, seconds=seconds
        )


def _run_child(workdir: Path, limits: TrialLimits) -> int:
    """The child's exit status; a TrialFailure("timeout") once the time is up (it is killed,
    with anything it started)."""
    with open(workdir / "trial.log", "wb") as log:
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
            TRIAL_COMMAND,
            cwd=workdir,
            env=_child_environment(workdir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one
        )
        try:
            return child.wait(timeout=limits.timeout_seconds)
        except subprocess.TimeoutExpired:
            _kill_group(child)
            raise TrialFailure(
                "timeout",
                f"the trial did not finish within {limits.timeout_seconds:g} s and was killed: "
                "an inference never ends or is far too slow",
            ) from None
        except BaseException:
            _kill_group(child)  # nothing it started outlives this call
            raise


def _kill_group(child: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is gone already
        os.killpg(child.pid, signal.SIGKILL)
    try:
        child.wait(timeout=KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:  # cannot happen after SIGKILL short of a kernel stall
        raise TrialFailure("sandbox", "the trial process could not be ended") from None


def _child_environment(workdir: Path) -> dict[str, str]:
    """Only what Python needs to find the app's packages: none of the app's settings or
    secrets (connection strings, the signing key) reach the code that parses the candidate."""
    paths = [str(APP_ROOT)] + [entry for entry in sys.path if entry and Path(entry).is_dir()]
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",  # its last words reach the log even if it crashes
    }


def _read_report(workdir: Path, returncode: int, limits: TrialLimits) -> dict:
    path = workdir / REPORT_FILE
    if returncode != 0 or not path.is_file():
        raise _crash(workdir, returncode, limits)
    if path.stat().st_size > MAX_REPORT_BYTES:
        raise TrialFailure("sandbox", "the trial's report is over its size limit")
    try:
        report = json.loads(path.read_bytes())
    except ValueError as error:
        raise TrialFailure("sandbox", f"the trial's report is not JSON: {error}") from error
    if not isinstance(report, dict) or not (
        report.get("accepted") is True or report.get("check") in KNOWN_CHECKS
    ):
        raise TrialFailure("sandbox", "the trial's report is not one the gate understands")
    return report


def _crash(workdir: Path, returncode: int, limits: TrialLimits) -> TrialFailure:
    """A child that ended without a report: killed by a signal, out of memory or CPU, or an
    error in the trial itself. Its last words go into the reason (the app's own messages,
    not the candidate's bytes)."""
    tail = _log_tail(workdir)
    if returncode < 0:
        how = f"was killed by {_signal_name(-returncode)}"
    else:
        how = f"exited with status {returncode} without a report"
    if returncode == -signal.SIGXCPU:
        return TrialFailure(
            "timeout", f"the trial process used its {limits.timeout_seconds:g} s of CPU: {tail}"
        )
    if "bad_alloc" in tail or "MemoryError" in tail:
        return TrialFailure(
            "memory",
            f"the trial process {how} short of memory (its limit: "
            f"{limits.address_space_bytes // 2**20} MiB of address space): {tail}",
        )
    return TrialFailure("sandbox", f"the trial process {how}: {tail or 'no output'}")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # a real-time signal, say: not in the enum
        return f"signal {number}"


def _log_tail(workdir: Path) -> str:
    try:
        with open(workdir / "trial.log", "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - LOG_TAIL_BYTES))
            return log.read().decode("utf-8", "replace").strip().replace("\n", " | ")
    except OSError:
        return ""


def _figures_of(report: dict) -> dict[str, object]:
    """The figures the gate records, and nothing else the report might hold."""
    figures = report.get("figures")
    if not isinstance(figures, dict) or not all(
        isinstance(figures.get(name), int | float) for name in TRIAL_FIGURES
    ):
        raise TrialFailure("sandbox", f"the trial's report lacks its figures {TRIAL_FIGURES}")
    return {name: figures[name] for name in TRIAL_FIGURES}


def _read_probabilities(workdir: Path, images: int) -> np.ndarray:
    path = workdir / PROBABILITIES_FILE
    expected_bytes = images * 10 * 4
    if not path.is_file() or path.stat().st_size > expected_bytes + 1024:
        raise TrialFailure("sandbox", "the trial's gate-set answers are missing or oversized")
    probabilities = np.load(path, allow_pickle=False)
    if probabilities.shape != (images, 10) or probabilities.dtype != np.float32:
        raise TrialFailure("sandbox", "the trial's gate-set answers have the wrong shape")
    return probabilities
