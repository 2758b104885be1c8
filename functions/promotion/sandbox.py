"""Running a candidate's trial (trial.py) in a child process, and reading back its report: an
empty working directory that is gone before the child runs, a minimal environment, limits on
time and memory, and a kill of the whole process group when the time is up. Whatever the child
does, the caller gets either a report or a `Refusal` (the one the child raised, or one that says
how the child ended), within the time limit.

Nothing of a trial is ever a file: the candidate, the gate set's images, the settings, the
report, the answers and the log are anonymous memory files (memfd) that the child inherits, and
they vanish with the last process that holds them. A trial killed at any point, the app's
process with it or not, leaves nothing behind."""

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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from functions.promotion.errors import Refusal

APP_ROOT = Path(__file__).resolve().parent.parent.parent
# -P: nothing is put before the app's own paths in sys.path (the working directory is gone).
TRIAL_COMMAND = (sys.executable, "-B", "-P", "-m", "functions.promotion.trial")
# The trial's memory files, shared with trial.py (which imports them from here, so that the app
# itself never imports onnx). The settings name each one's descriptor in the child; the
# environment names the settings' own.
CANDIDATE_FILE = "candidate"
GATE_IMAGES_FILE = "gate_images"
REPORT_FILE = "report"
ANSWERS_FILE = "gate_answers"
LOG_FILE = "log"
SETTINGS_FILE = "settings"
SETTINGS_FD_VARIABLE = "MODEL_TRIAL_SETTINGS_FD"
TRIAL_FILES = (CANDIDATE_FILE, GATE_IMAGES_FILE, REPORT_FILE, ANSWERS_FILE, LOG_FILE)
# What the child may write into one file (its log included): past it the child is killed
# (SIGXFSZ). The memory files live in the host's memory.
MAX_WRITTEN_BYTES = 8 * 1024 * 1024
# The working directory's name: the app's process id first, so that one left by a kill in the
# moment between its creation and removal (two system calls apart) is found and removed.
DIRECTORY_PREFIX = "model-trial-"
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
    {"loads", "external_data", "checker", "contract", "graph", "latency", "batch", "memory"}
)


@dataclass(frozen=True)
class TrialLimits:
    timeout_seconds: float
    address_space_bytes: int


@dataclass(frozen=True)
class GateAnswers:
    """The candidate's answers on the images it was tried on, in their order."""

    probabilities: np.ndarray  # (m, 10) float32
    is_digit: np.ndarray  # (m,) bool, by the candidate's own rule (all True without one)


@dataclass(frozen=True)
class TrialReport:
    figures: dict[str, object]
    answers: GateAnswers
    seconds: float


def run_trial(
    content: bytes, gate_images: np.ndarray, settings: dict[str, object], limits: TrialLimits
) -> TrialReport:
    with ONE_TRIAL_AT_A_TIME, contextlib.ExitStack() as stack:
        files = {
            name: stack.enter_context(_memory_file(name)) for name in (*TRIAL_FILES, SETTINGS_FILE)
        }
        files[CANDIDATE_FILE].write(content)
        np.save(files[GATE_IMAGES_FILE], gate_images, allow_pickle=False)
        files[SETTINGS_FILE].write(
            json.dumps(
                {
                    **settings,
                    "files": {name: files[name].fileno() for name in TRIAL_FILES},
                    "parent_pid": os.getpid(),
                    "address_space_bytes": limits.address_space_bytes,
                    "cpu_seconds": int(limits.timeout_seconds) + CPU_SECONDS_MARGIN,
                    "written_bytes": MAX_WRITTEN_BYTES,
                }
            ).encode()
        )
        for file in files.values():  # the child reads from where the parent leaves the offset
            file.flush()
            file.seek(0)
        started = time.monotonic()
        returncode = _run_child(files, limits)
        seconds = round(time.monotonic() - started, 3)
        report = _read_report(files, returncode, limits)
        if not report.get("accepted"):
            raise Refusal(str(report["check"]), str(report["reason"])[:2000])
        answers = _read_answers(files[ANSWERS_FILE], len(gate_images))
        return TrialReport(figures=_figures_of(report), answers=answers, seconds=seconds)


@contextlib.contextmanager
def _memory_file(name: str) -> Iterator[BinaryIO]:
    """An anonymous file in memory: no path, gone once no process holds it."""
    descriptor = os.memfd_create(f"{DIRECTORY_PREFIX}{name}", os.MFD_CLOEXEC)
    with open(descriptor, "w+b") as file:
        yield file


@contextlib.contextmanager
def _vanished_directory() -> Iterator[str]:
    """A working directory for the child that is empty and already removed: nothing can be
    created in it and no relative path resolves. Yields a path to it (through this process's
    open descriptor) that stays valid while the child is started."""
    _remove_stale_directories()
    path = tempfile.mkdtemp(prefix=f"{DIRECTORY_PREFIX}{os.getpid()}-")
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    finally:
        os.rmdir(path)
    try:
        yield f"/proc/self/fd/{descriptor}"
    finally:
        os.close(descriptor)


def _remove_stale_directories() -> None:
    """Working directories of app processes that were killed between creating one and removing
    it: empty (nothing is ever written there), so rmdir removes them and nothing else."""
    for path in Path(tempfile.gettempdir()).glob(f"{DIRECTORY_PREFIX}*-*"):
        owner = path.name.removeprefix(DIRECTORY_PREFIX).split("-", 1)[0]
        if owner.isdigit() and int(owner) != os.getpid() and not _is_running(int(owner)):
            with contextlib.suppress(OSError):  # not empty, not ours, or gone meanwhile
                path.rmdir()


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _run_child(files: dict[str, BinaryIO], limits: TrialLimits) -> int:
    """The child's exit status; a Refusal("timeout") once the time is up (it is killed,
    with anything it started)."""
    with _vanished_directory() as workdir:
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
            TRIAL_COMMAND,
            cwd=workdir,
            env=_child_environment(files[SETTINGS_FILE].fileno()),
            stdin=subprocess.DEVNULL,
            stdout=files[LOG_FILE],
            stderr=subprocess.STDOUT,
            pass_fds=tuple(file.fileno() for file in files.values()),
            start_new_session=True,  # its own process group, killed as one
        )
    try:
        return child.wait(timeout=limits.timeout_seconds)
    except subprocess.TimeoutExpired:
        _kill_group(child)
        raise Refusal(
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
        raise Refusal("sandbox", "the trial process could not be ended") from None


def _child_environment(settings_descriptor: int) -> dict[str, str]:
    """Only what Python needs to find the app's packages: none of the app's settings or
    secrets (connection strings, the signing key) reach the code that parses the candidate."""
    paths = [str(APP_ROOT)] + [entry for entry in sys.path if entry and Path(entry).is_dir()]
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
        "HOME": ".",  # the working directory: empty, removed, nothing can be written there
        "TMPDIR": ".",
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",  # its last words reach the log even if it crashes
        SETTINGS_FD_VARIABLE: str(settings_descriptor),
    }


def _read_report(files: dict[str, BinaryIO], returncode: int, limits: TrialLimits) -> dict:
    file = files[REPORT_FILE]
    size = os.fstat(file.fileno()).st_size
    if returncode != 0 or not size:
        raise _crash(files[LOG_FILE], returncode, limits)
    if size > MAX_REPORT_BYTES:
        raise Refusal("sandbox", "the trial's report is over its size limit")
    file.seek(0)
    try:
        report = json.loads(file.read(MAX_REPORT_BYTES))
    except ValueError as error:
        raise Refusal("sandbox", f"the trial's report is not JSON: {error}") from error
    if not isinstance(report, dict) or not (
        report.get("accepted") is True or report.get("check") in KNOWN_CHECKS
    ):
        raise Refusal("sandbox", "the trial's report is not one the gate understands")
    return report


def _crash(log: BinaryIO, returncode: int, limits: TrialLimits) -> Refusal:
    """A child that ended without a report: killed by a signal, out of memory or CPU, or an
    error in the trial itself. Its last words go into the reason (the app's own messages,
    not the candidate's bytes)."""
    tail = _log_tail(log)
    if returncode < 0:
        how = f"was killed by {_signal_name(-returncode)}"
    else:
        how = f"exited with status {returncode} without a report"
    if returncode == -signal.SIGXCPU:
        return Refusal(
            "timeout", f"the trial process used its {limits.timeout_seconds:g} s of CPU: {tail}"
        )
    if "bad_alloc" in tail or "MemoryError" in tail:
        return Refusal(
            "memory",
            f"the trial process {how} short of memory (its limit: "
            f"{limits.address_space_bytes // 2**20} MiB of address space): {tail}",
        )
    return Refusal("sandbox", f"the trial process {how}: {tail or 'no output'}")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # a real-time signal, say: not in the enum
        return f"signal {number}"


def _log_tail(log: BinaryIO) -> str:
    try:
        size = os.fstat(log.fileno()).st_size
        tail = os.pread(log.fileno(), LOG_TAIL_BYTES, max(0, size - LOG_TAIL_BYTES))
    except OSError:
        return ""
    return tail.decode("utf-8", "replace").strip().replace("\n", " | ")


def _figures_of(report: dict) -> dict[str, object]:
    """The figures the gate records, and nothing else the report might hold."""
    figures = report.get("figures")
    if not isinstance(figures, dict) or not all(
        isinstance(figures.get(name), int | float) for name in TRIAL_FIGURES
    ):
        raise Refusal("sandbox", f"the trial's report lacks its figures {TRIAL_FIGURES}")
    return {name: figures[name] for name in TRIAL_FIGURES}


def _read_answers(file: BinaryIO, images: int) -> GateAnswers:
    expected_bytes = images * (10 * 4 + 1)
    size = os.fstat(file.fileno()).st_size
    if not size or size > expected_bytes + 4096:
        raise Refusal("sandbox", "the trial's gate-set answers are missing or oversized")
    file.seek(0)
    try:
        with np.load(file, allow_pickle=False) as archive:
            answers = GateAnswers(archive["probabilities"], archive["is_digit"])
    except (ValueError, KeyError, OSError) as error:
        raise Refusal("sandbox", f"the trial's gate-set answers are unreadable: {error}") from error
    if (
        answers.probabilities.shape != (images, 10)
        or answers.probabilities.dtype != np.float32
        or answers.is_digit.shape != (images,)
        or answers.is_digit.dtype != np.bool_
    ):
        raise Refusal("sandbox", "the trial's gate-set answers have the wrong shape")
    return answers
