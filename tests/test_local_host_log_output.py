"""The local host's log output: lines logged on the event loop are written once the loop step
is over, in one write; lines logged elsewhere at once; nothing is lost at exit; the stamps are
logging's own."""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from local_host.log_output import LINE_FORMAT, AfterTheStep, SecondsOnce


class CountedWrites(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def stream_and_logger() -> Iterator[tuple[CountedWrites, logging.Logger]]:
    stream = CountedWrites()
    handler = AfterTheStep()
    handler.setStream(stream)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger = logging.getLogger("tests.log_output")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield stream, logger
    logger.removeHandler(handler)


def test_lines_logged_in_a_loop_step_are_written_after_it_in_one_write(
    stream_and_logger: tuple[CountedWrites, logging.Logger],
) -> None:
    stream, logger = stream_and_logger

    async def step() -> tuple[str, str]:
        changing = ["as logged"]
        logger.info("first %s", changing)
        logger.warning("second")
        changing[0] = "changed after"
        during = stream.getvalue()
        await asyncio.sleep(0)  # the step ends; the loop runs what it was given
        return during, stream.getvalue()

    during, after = asyncio.run(step())
    assert during == ""
    assert after == "tests.log_output: first ['as logged']\ntests.log_output: second\n"
    assert stream.writes == 1


def test_lines_logged_off_the_loop_are_written_at_once(
    stream_and_logger: tuple[CountedWrites, logging.Logger],
) -> None:
    stream, logger = stream_and_logger
    logger.info("no loop here")
    assert stream.getvalue() == "tests.log_output: no loop here\n"

    async def from_a_thread() -> str:
        thread = threading.Thread(target=logger.info, args=("from a worker thread",))
        thread.start()
        thread.join()
        return stream.getvalue()  # before the loop has had a turn

    assert asyncio.run(from_a_thread()).endswith("tests.log_output: from a worker thread\n")


def test_flush_writes_what_is_pending(
    stream_and_logger: tuple[CountedWrites, logging.Logger],
) -> None:
    stream, logger = stream_and_logger

    async def log_and_flush() -> str:
        logger.info("pending")
        logger.handlers[0].flush()
        return stream.getvalue()

    assert asyncio.run(log_and_flush()) == "tests.log_output: pending\n"


def test_a_line_logged_just_before_the_process_exits_is_written() -> None:
    program = (
        "import asyncio, logging\n"
        "from local_host.log_output import configure_logging\n"
        "configure_logging()\n"
        "async def main():\n"
        "    logging.getLogger('last').info('the last words')\n"
        "    raise SystemExit(3)\n"
        "asyncio.run(main())\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert finished.returncode == 3
    assert finished.stderr.rstrip().endswith("INFO last: the last words")


@pytest.mark.parametrize(
    "created", [1_764_863_999.999, 1_764_864_000.0, 1_764_864_000.5, 1_764_864_061.042]
)
def test_time_stamps_are_the_ones_logging_writes(created: float) -> None:
    ours, logging_own = SecondsOnce(LINE_FORMAT), logging.Formatter(LINE_FORMAT)
    for when in (created - 1, created, created):  # a second before, then the cached second
        record = logging.LogRecord("n", logging.INFO, __file__, 1, "message", None, None)
        record.created, record.msecs = when, int((when - int(when)) * 1000) + 0.0
        assert ours.format(record) == logging_own.format(record)
