"""Soak: no request, picture or model drop takes the service down (issue 8), in one run.

    make soak                 (or: .venv/bin/python -m benchmarks.soak [--seconds 5])

Starts its own stack on free loopback ports (Azurite, the local host, the Event Grid stand-in;
see soak_stack.py), stops it at the end whatever happens, and reports each figure next to its
target:

1. attack: 32 clients send the largest accepted pictures, PNG bombs, a lying Content-Length,
   bodies over the limit, gzip bodies and full JSON batches for 30 s, while the host's RSS (with
   its children) and /api/health are sampled: RSS under 1.5 GB, health p99 under 1 s, no 5xx,
   no request without an answer within its timeout;
2. storage frozen: predict p99 while Azurite is stopped (SIGSTOP) and /api/models is flooded,
   against the quiet predict p99 of the same run: within 2x;
3. bad models: each of tests/bad_models.py's models dropped into incoming/, and the time until
   its refusal is recorded, while a predict loop counts failures: all refused, none failed.

Exit status 0 when every figure meets its target, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
from azure.core.exceptions import AzureError, ResourceNotFoundError

from benchmarks.serving import ROOT, machine
from benchmarks.soak_health import HealthProbe
from benchmarks.soak_payloads import (
    Payload,
    app_limits,
    digit_picture,
    hostile_payloads,
    largest_side,
)
from benchmarks.soak_stack import (
    LOOPBACK,
    STOP_SECONDS,
    MemoryWatch,
    Stack,
    StackError,
    log_tail,
    start_stack,
    stop_stack,
)

RSS_TARGET_BYTES = 1_500_000_000
HEALTH_P99_TARGET_S = 1.0
FROZEN_P99_RATIO_TARGET = 2.0
SEND_CHUNK = 256 * 1024
PROBE_STEPS = 6  # tries, each at half the area, to find the largest accepted picture
# Where the external-data model's weights are planted, relative to the host's working directory
# (the repository root): a file the gate must never read.
EXTERNAL_DATA_LOCATION = "build/soak/external-weights.bin"


@dataclass
class Report:
    """Rows of (figure, value, target, passed); passed None is a reference figure."""

    rows: list[tuple[str, str, str, bool | None]] = field(default_factory=list)
    results: dict[str, object] = field(default_factory=dict)

    def add(self, figure: str, value: str, target: str = "", passed: bool | None = None) -> None:
        self.rows.append((figure, value, target, passed))

    @property
    def passed(self) -> bool:
        return all(passed is not False for *_, passed in self.rows)

    def table(self) -> str:
        header = ("figure", "value", "target", "verdict")
        lines = [
            (figure, value, target, {True: "PASS", False: "FAIL", None: ""}[passed])
            for figure, value, target, passed in self.rows
        ]
        widths = [max(len(line[i]) for line in [header, *lines]) for i in range(3)]
        return "\n".join(
            f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}"
            for a, b, c, d in [header, *lines]
        )


# --- HTTP, with a timeout on every request -----------------------------------------------


async def exchange(port: int, payload: Payload, timeout: float, path: str = "/api/predict") -> str:
    """POSTs the payload on a fresh connection; the status code, or "timeout", or "reset" (the
    connection closed without an answer), "error" (it could not be opened) or "garbled" (the
    answer is no HTTP)."""
    try:
        return await asyncio.wait_for(_exchange(port, payload, path), timeout)
    except TimeoutError:
        return "timeout"
    except ConnectionError:
        return "reset"
    except OSError:
        return "error"
    except (ValueError, IndexError):  # a status line too long, or without a status
        return "garbled"


async def _exchange(port: int, payload: Payload, path: str) -> str:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {LOOPBACK}:{port}",
            "Connection: close",
            f"Content-Length: {payload.content_length}",
            *(f"{name}: {value}" for name, value in payload.headers.items()),
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        body = memoryview(payload.body)
        # A server may answer 413 and close before the whole body is sent: then read that answer.
        with contextlib.suppress(ConnectionError):
            for start in range(0, len(body), SEND_CHUNK):
                writer.write(body[start : start + SEND_CHUNK])
                await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            return "reset"
        await reader.read()  # the answer's rest, until the server closes (Connection: close)
        return status_line.split()[1].decode()
    finally:
        writer.close()


def is_failure(outcome: str, payload: Payload) -> bool:
    """A 5xx, no answer in time, or a cut connection where the server had no reason to cut."""
    if outcome in {"timeout", "error", "garbled"} or outcome.startswith("5"):
        return True
    return outcome == "reset" and not payload.may_be_cut


def p99(seconds: list[float]) -> float:
    return float(np.percentile(seconds, 99)) if seconds else float("inf")


# --- phase 1: pictures and bodies ---------------------------------------------------------


async def largest_accepted(port: int, name: str, build, side: int, timeout: float) -> Payload:
    """The picture of `build(side)`, shrunk until the app accepts it (a limit other than the
    pixel count, such as a decoded-size one, may refuse the largest by pixels)."""
    headers = {"Content-Type": "image/jpeg" if "jpeg" in name else "image/png"}
    for _ in range(PROBE_STEPS):
        payload = Payload(name, await asyncio.to_thread(build, side), headers)
        outcome = await exchange(port, payload, timeout)
        if outcome in {"400", "413", "422"}:
            side = int(side * 0.7)
            continue
        break
    return Payload(f"{name} {side}x{side}", payload.body, headers)


async def attack_client(  # noqa: PLR0917
    index: int, port: int, payloads: list[Payload], deadline: float, timeout: float, outcomes
) -> None:
    turn = index  # each client starts on a different kind, so all kinds run at once
    while time.monotonic() < deadline:
        payload = payloads[turn % len(payloads)]
        turn += 1
        outcomes[payload.name][await exchange(port, payload, timeout)] += 1


async def attack_phase(stack: Stack, args: argparse.Namespace, watch: MemoryWatch, report: Report):
    limits = app_limits()
    side = largest_side(limits)
    print(f"1. building worst-case requests (limits {limits})", flush=True)
    pictures = [
        await largest_accepted(stack.port, "png", lambda s: digit_picture(s, "PNG"), side, 60),
        await largest_accepted(
            stack.port,
            "png 16-bit",
            lambda s: digit_picture(s, "PNG", sixteen_bit=True),
            side,
            60,
        ),
        await largest_accepted(stack.port, "jpeg", lambda s: digit_picture(s, "JPEG"), side, 60),
    ]
    payloads = pictures + await asyncio.to_thread(hostile_payloads, limits)
    sizes = {payload.name: len(payload.body) for payload in payloads}
    print(f"   {len(payloads)} kinds, bytes on the wire: {sizes}", flush=True)
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    watch.reset_peak()
    print(f"   {args.clients} clients for {args.seconds:g} s", flush=True)
    with HealthProbe(stack.port, args.request_timeout) as health:
        deadline = time.monotonic() + args.seconds
        await asyncio.gather(
            *(
                attack_client(i, stack.port, payloads, deadline, args.request_timeout, outcomes)
                for i in range(args.clients)
            )
        )
    by_name = {payload.name: payload for payload in payloads}
    failures = {
        name: sum(n for outcome, n in counts.items() if is_failure(outcome, by_name[name]))
        for name, counts in outcomes.items()
    }
    server_errors = sum(
        n for counts in outcomes.values() for outcome, n in counts.items() if outcome[0] == "5"
    )
    hangs = sum(counts["timeout"] for counts in outcomes.values())
    report.results["attack"] = {
        "limits": limits,
        "bytes_on_the_wire": sizes,
        "outcomes": {name: dict(counts) for name, counts in outcomes.items()},
        "failures": failures,
        "peak_rss_bytes": watch.peak,
        "health_p99_s": health.p99,
        "health_statuses": dict(health.statuses),
    }
    for name, counts in outcomes.items():
        print(f"   {name:<28} {dict(sorted(counts.items()))}", flush=True)
    report.add(
        "1 host RSS peak under attack",
        f"{watch.peak / 1e6:,.0f} MB",
        f"< {RSS_TARGET_BYTES / 1e9:g} GB",
        watch.peak < RSS_TARGET_BYTES,
    )
    report.add(
        "1 /api/health p99 under attack",
        f"{health.p99 * 1e3:,.0f} ms ({health.failures} failed of {len(health.latencies)})",
        f"< {HEALTH_P99_TARGET_S * 1e3:.0f} ms, 0 failed",
        health.p99 < HEALTH_P99_TARGET_S and health.failures == 0,
    )
    total = sum(sum(counts.values()) for counts in outcomes.values())
    report.add("1 5xx answers", f"{server_errors} of {total}", "0", server_errors == 0)
    report.add(
        "1 requests unanswered in time",
        f"{hangs} (timeout {args.request_timeout:g} s)",
        "0",
        hangs == 0,
    )
    cut = sum(failures.values()) - server_errors - hangs
    report.add("1 other failures (cut, refused)", str(cut), "0", cut == 0)


# --- phase 2: storage frozen, /api/models flooded -----------------------------------------


def predict_bodies(count: int = 50, seed: int = 1) -> list[bytes]:
    images = np.random.default_rng(seed).integers(0, 256, (count, 784))
    return [json.dumps({"pixels": image.tolist()}).encode() for image in images]


async def predict_load(stack: Stack, args: argparse.Namespace, images_file: Path) -> dict | None:
    """benchmarks/http_load.py in a process of its own (the flood here must not slow the
    measuring client); None when it does not finish in time."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "benchmarks.http_load", "--url", stack.api + "/predict"),
        *("--clients", str(args.predict_clients), "--seconds", str(args.seconds)),
        *("--images", str(images_file)),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), args.seconds + 60)
    except TimeoutError:
        return None
    finally:
        if process.returncode is None:  # timed out, or the soak was interrupted
            process.kill()
            await process.wait()
    if process.returncode != 0:
        print(f"   the predict load failed: {err.decode(errors='replace')[-500:]}", flush=True)
        return None
    return json.loads(out)


async def models_client(session: aiohttp.ClientSession, url: str, deadline: float, outcomes):
    while time.monotonic() < deadline:
        try:
            async with session.get(url) as answer:
                await answer.read()
                outcomes[str(answer.status)] += 1
        except TimeoutError:
            outcomes["timeout"] += 1
        except aiohttp.ClientError:
            outcomes["error"] += 1


async def frozen_storage_phase(stack: Stack, args: argparse.Namespace, report: Report):
    with tempfile.TemporaryDirectory() as folder:
        images_file = Path(folder) / "images.json"
        images = np.random.default_rng(2).integers(0, 256, (50, 784))
        images_file.write_text(json.dumps(images.tolist()))
        print(
            f"2. quiet: {args.predict_clients} predict clients for {args.seconds:g} s", flush=True
        )
        quiet = await predict_load(stack, args, images_file)
        print(
            f"   storage frozen, {args.models_clients} clients on /api/models, "
            f"{args.predict_clients} on predict, for {args.seconds:g} s",
            flush=True,
        )
        outcomes: Counter[str] = Counter()
        timeout = aiohttp.ClientTimeout(total=args.request_timeout)
        connector = aiohttp.TCPConnector(limit=args.models_clients)
        frozen_state = stack.freeze_storage()
        try:
            with HealthProbe(stack.port, args.request_timeout) as health:
                async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
                    deadline = time.monotonic() + args.seconds
                    flood = [
                        models_client(session, stack.api + "/models", deadline, outcomes)
                        for _ in range(args.models_clients)
                    ]
                    frozen, *_ = await asyncio.gather(
                        predict_load(stack, args, images_file), *flood
                    )
        finally:
            stack.thaw_storage()
    report.results["frozen_storage"] = {
        "azurite_stopped": frozen_state,
        "quiet": quiet,
        "frozen": frozen,
        "models_outcomes": dict(outcomes),
        "health_p99_s": health.p99,
        "health_statuses": dict(health.statuses),
        "health_storage_reachable": dict(health.storage_reachable),
    }
    report.add("2 Azurite stopped (SIGSTOP)", "yes" if frozen_state else "no", "yes", frozen_state)
    report.add("2 /api/models answers while frozen", str(dict(outcomes)) or "none", "reference")
    print(f"   /api/models answers while frozen: {dict(outcomes)}", flush=True)
    print(f"   /api/health storage.reachable while frozen: {dict(health.storage_reachable)}")
    quiet_p99 = quiet["p99_ms"] if quiet else float("inf")
    report.add(
        "2 predict p99, quiet",
        f"{quiet_p99:,.1f} ms ({quiet['errors'] if quiet else '?'} errors)",
        "reference, 0 errors",
        bool(quiet) and quiet["errors"] == 0,
    )
    if frozen is None:
        report.add("2 predict p99, storage frozen + models flood", "no answer in time", "", False)
    else:
        ratio = frozen["p99_ms"] / quiet_p99 if quiet else float("inf")
        report.add(
            "2 predict p99, storage frozen + models flood",
            f"{frozen['p99_ms']:,.1f} ms = {ratio:.2f}x quiet ({frozen['errors']} errors)",
            f"<= {FROZEN_P99_RATIO_TARGET:g}x quiet, 0 errors",
            ratio <= FROZEN_P99_RATIO_TARGET and frozen["errors"] == 0,
        )
    report.add(
        "2 /api/health p99, storage frozen",
        f"{health.p99 * 1e3:,.0f} ms ({health.failures} failed)",
        f"< {HEALTH_P99_TARGET_S * 1e3:.0f} ms, 0 failed",
        health.p99 < HEALTH_P99_TARGET_S and health.failures == 0,
    )


# --- phase 3: bad models ------------------------------------------------------------------


def bad_model_files(run_id: str, slow_seconds: float) -> dict[str, tuple[str, bytes]]:
    """kind -> (version, ONNX bytes), from the builders the tests use."""
    from tests import bad_models  # noqa: PLC0415 - written beside the tests, needs onnx

    # The weights it points at are really there, right for it: only the gate stands between.
    planted = ROOT / EXTERNAL_DATA_LOCATION
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_bytes(bad_models.external_data_payload())
    builders = {
        "never-ending": bad_models.never_ending_model_bytes,
        "allocation-bomb": bad_models.allocation_bomb_model_bytes,
        "external-data": lambda version: bad_models.external_data_model_bytes(
            version, EXTERNAL_DATA_LOCATION
        ),
        "batch-liar": bad_models.batch_liar_model_bytes,
        "slow": lambda version: bad_models.slow_model_bytes(version, slow_seconds),
    }
    files = {}
    for kind, build in builders.items():
        version = f"soak-{kind}-{run_id}"
        files[kind] = (version, build(version))
    return files


@dataclass
class PredictLoop:
    """Single-image predictions one after another until stopped, each with a timeout."""

    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)

    async def run(self, url: str, stop: asyncio.Event, timeout: float) -> None:
        bodies = predict_bodies()
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        headers = {"Content-Type": "application/json"}
        async with aiohttp.ClientSession(timeout=client_timeout) as session:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    async with session.post(
                        url, data=bodies[len(self.latencies) % len(bodies)], headers=headers
                    ) as answer:
                        await answer.read()
                        if answer.status != 200:
                            self.failures[str(answer.status)] += 1
                except TimeoutError:
                    self.failures["timeout"] += 1
                except aiohttp.ClientError:
                    self.failures["error"] += 1
                self.latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.02)


def decisions_for(stack: Stack, versions: set[str]) -> dict[str, dict]:
    """The recorded decision on each version that has one: the audit log's tail, then
    rejected/<version>.json for those the log does not show."""
    from functions.storage.model_registry import ModelRegistry  # noqa: PLC0415
    from functions.storage.registry import REJECTED  # noqa: PLC0415

    container = stack.container()
    found: dict[str, dict] = {}
    for record in ModelRegistry(container).recent_decisions(200):  # newest first
        if record.get("version") in versions:
            found.setdefault(record["version"], record)
    for version in versions - set(found):
        with contextlib.suppress(ResourceNotFoundError):
            found[version] = json.loads(
                container.download_blob(f"{REJECTED}{version}.json").readall()
            )
            found[version].setdefault("decision", "rejected")
    return found


async def bad_models_phase(stack: Stack, args: argparse.Namespace, report: Report) -> None:
    from conversion.publish import publish  # noqa: PLC0415 - needs onnx, as the tests do

    run_id = uuid.uuid4().hex[:8]
    try:
        files = bad_model_files(run_id, args.slow_seconds)
    except ImportError as error:
        report.add("3 bad models", f"not run: {error}", "tests/bad_models.py", False)
        return
    container = stack.container()
    loop, stop = PredictLoop(), asyncio.Event()
    predicting = asyncio.create_task(loop.run(stack.api + "/predict", stop, args.request_timeout))
    dropped_at: dict[str, float] = {}
    decided: dict[str, tuple[float, dict]] = {}
    try:
        for kind, (version, content) in files.items():
            await asyncio.to_thread(publish, container, content, version)
            dropped_at[version] = time.monotonic()
            print(f"3. dropped {kind} as incoming/{version}.onnx", flush=True)
        deadline = time.monotonic() + args.decision_timeout
        while len(decided) < len(files) and time.monotonic() < deadline:
            await asyncio.sleep(1)
            pending = set(dropped_at) - set(decided)
            try:
                records = await asyncio.to_thread(decisions_for, stack, pending)
            except AzureError as error:
                print(f"   storage did not answer this round: {type(error).__name__}", flush=True)
                continue
            for version, record in records.items():
                decided[version] = (time.monotonic() - dropped_at[version], record)
                print(f"   {version}: {record.get('decision')} after {decided[version][0]:.1f} s")
    finally:
        stop.set()
        await predicting
        (ROOT / EXTERNAL_DATA_LOCATION).unlink(missing_ok=True)
    left: list[str] | None = None  # unknown, if storage does not answer
    with contextlib.suppress(AzureError):
        left = [blob.name for blob in container.list_blobs("incoming/") if run_id in blob.name]
    report.results["bad_models"] = {
        "decisions": {
            version: {"seconds": seconds, "record": record}
            for version, (seconds, record) in decided.items()
        },
        "undecided": sorted(set(dropped_at) - set(decided)),
        "left_in_incoming": left,
        "predictions": len(loop.latencies),
        "prediction_failures": dict(loop.failures),
        "prediction_p99_s": p99(loop.latencies),
    }
    for kind, (version, _) in files.items():
        if version not in decided:
            report.add(
                f"3 {kind}: refused",
                f"undecided after {args.decision_timeout:g} s",
                f"refused in < {args.decision_timeout:g} s",
                False,
            )
            continue
        seconds, record = decided[version]
        verdict = record.get("decision")
        reason = f" ({record.get('check')}: {record.get('reason', '')}"[:60] + ")"
        report.add(
            f"3 {kind}: refused",
            f"{verdict} after {seconds:.1f} s" + (reason if verdict == "rejected" else ""),
            f"refused in < {args.decision_timeout:g} s",
            verdict == "rejected",
        )
    failed = sum(loop.failures.values())
    report.add(
        "3 predictions during the drops",
        f"{failed} failed of {len(loop.latencies)}, p99 {p99(loop.latencies) * 1e3:,.0f} ms",
        "0 failed",
        failed == 0 and bool(loop.latencies),
    )
    report.add(
        "3 files left in incoming/",
        "unknown (storage error)" if left is None else str(len(left)),
        "0",
        left == [],
    )


# --- the run ------------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--phases", default="1,2,3", help="which phases to run, e.g. 1,3 (default: all)"
    )
    parser.add_argument("--seconds", type=float, default=30, help="length of phases 1 and 2")
    parser.add_argument(
        "--request-timeout", type=float, default=15, help="every request's limit, in seconds"
    )
    parser.add_argument("--json", help="also write the results to this file")
    attack = parser.add_argument_group("phase 1, attack")
    attack.add_argument("--clients", type=int, default=32, help="attacking clients")
    frozen = parser.add_argument_group("phase 2, storage frozen")
    frozen.add_argument("--models-clients", type=int, default=32, help="/api/models flood")
    frozen.add_argument("--predict-clients", type=int, default=4, help="predict load")
    bad_models = parser.add_argument_group("phase 3, bad models")
    bad_models.add_argument(
        "--decision-timeout", type=float, default=180, help="limit per bad model"
    )
    bad_models.add_argument(
        "--slow-seconds", type=float, default=4, help="the slow model's run time"
    )
    stack = parser.add_argument_group("the stack")
    stack.add_argument("--refresh-seconds", type=float, default=1, help="MODEL_REFRESH_SECONDS")
    stack.add_argument(
        "--abort-rss-mb",
        type=float,
        default=4000,
        help="kill the host past this RSS, to protect the machine (default 4000)",
    )
    stack.add_argument("--log-dir", type=Path, default=ROOT / "build" / "soak", help="child logs")
    return parser.parse_args(argv)


async def run_phases(stack: Stack, args: argparse.Namespace, watch: MemoryWatch, report: Report):
    phases = {part.strip() for part in args.phases.split(",")}
    if "1" in phases:
        await attack_phase(stack, args, watch, report)
    if "2" in phases:
        await frozen_storage_phase(stack, args, report)
    if "3" in phases:
        await bad_models_phase(stack, args, report)


def _exit_text(status: int | None) -> str:
    if status is None:
        return "never started"
    if status < 0:
        return f"killed by signal {-status} (not stopped {STOP_SECONDS} s after SIGTERM)"
    return f"status {status}"


def _stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the stack is stopped in `finally`."""

    def stop(_number, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    sys.path.insert(0, str(ROOT))
    _stop_on_sigterm()
    report = Report(
        results={"machine": machine(), "arguments": vars(args) | {"log_dir": str(args.log_dir)}}
    )
    print(f"machine: {report.results['machine']}", flush=True)
    stack = None
    with tempfile.TemporaryDirectory(prefix="soak-azurite-") as data_dir:
        try:
            stack = start_stack(args.log_dir, Path(data_dir), args.refresh_seconds)
            print(f"stack up: {stack.base_url}, logs in {args.log_dir}", flush=True)
            with MemoryWatch(stack, int(args.abort_rss_mb * 1e6)) as watch:
                try:
                    asyncio.run(run_phases(stack, args, watch, report))
                finally:
                    report.results["peak_rss_whole_run_bytes"] = watch.run_peak
                    report.add("host RSS peak, whole run", f"{watch.run_peak / 1e6:,.0f} MB")
            if watch.aborted:
                report.add("host killed by the soak", watch.aborted, "never", False)
        except StackError as error:
            report.add("stack start", str(error).splitlines()[0], "starts", False)
            print(error, file=sys.stderr)
        except KeyboardInterrupt:
            report.add("run", "interrupted", "completes", False)
        finally:
            if stack is not None:
                alive = stack.alive()
                statuses = report.results["exit_statuses"] = stop_stack(stack)
                report.add("host's exit on SIGTERM", _exit_text(statuses.get("host")), "reference")
                if not alive.get("host", True):
                    report.add("host alive at the end", "no", "yes", False)
                    print(log_tail(stack, "host"), file=sys.stderr)
    print("\n" + report.table(), flush=True)
    print(f"\n{'PASS' if report.passed else 'FAIL'}: all figures against their targets")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report.results, indent=2, default=str) + "\n")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
