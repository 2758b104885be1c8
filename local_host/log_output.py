"""The local host's log output: INFO lines on stderr, the lines logged on the event loop written
once the loop step that logged them is done, which for a request is after its answer went out."""

from __future__ import annotations

import asyncio
import logging
import time

LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging() -> None:
    """INFO to stderr, without the Azure SDK's dump of every storage request."""
    handler = AfterTheStep()
    handler.setFormatter(SecondsOnce(LINE_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # Nothing printed here needs the caller's file and line, or the thread's and process's
    # names: the logging HOWTO's "Optimization" switches.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)


class AfterTheStep(logging.StreamHandler):
    """A stream handler that, on a thread running an event loop, formats and writes its lines
    when the loop step that logged them is over, all of them in one write. A request answered
    on the loop logs two lines (the app's and the host's) before its answer is sent; written
    inline, they held the answer back (docs/benchmarks.md, HTTP against a lean server). Lines
    logged on other threads are written at once. The message is taken when logged, as
    logging's QueueHandler does, so later changes to its arguments do not show."""

    def __init__(self) -> None:
        super().__init__()
        self._pending: list[tuple[logging.LogRecord, str]] = []

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an event loop's thread
            super().emit(record)
            return
        try:
            self._pending.append((record, record.getMessage()))
        except Exception:
            self.handleError(record)
            return
        if len(self._pending) == 1:
            loop.call_soon(self.write_pending)

    def write_pending(self) -> None:
        with self.lock:
            pending, self._pending = self._pending, []
            lines = []
            for record, message in pending:
                # Every other handler has had the record by now: it is ours to change.
                record.msg, record.args = message, None
                try:
                    lines.append(self.format(record) + self.terminator)
                except Exception:
                    self.handleError(record)
            if lines:
                self.stream.write("".join(lines))
                super().flush()

    def flush(self) -> None:
        """Write what is pending (logging.shutdown flushes every handler at exit), then flush."""
        self.write_pending()


class SecondsOnce(logging.Formatter):
    """logging's own line format, its date and time formatted once a second rather than on
    every line: strftime is a large part of what formatting a line costs."""

    def __init__(self, line_format: str) -> None:
        super().__init__(line_format)
        self._second, self._stamp = -1, ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime(self.default_time_format, self.converter(second))
        return self.default_msec_format % (self._stamp, record.msecs)
