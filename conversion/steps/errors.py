"""A step's command line: how it is read, what it says when the step cannot run, and how it
reports that."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path


def step_parser(description: str) -> argparse.ArgumentParser:
    """A step's command line, with its module's docstring, as written, for --help."""
    return argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )


class StepInputError(Exception):
    """A step's input is missing or unreadable; the message names it and where it comes from."""


def required_file(folder: str | Path, name: str, produced_by: str) -> Path:
    """`folder`/`name`, which an earlier step wrote; a clear error when it is not there."""
    path = Path(folder) / name
    if not Path(folder).is_dir():
        raise StepInputError(f"{folder}: no such folder; expected the output of the {produced_by}")
    if not path.is_file():
        raise StepInputError(f"{path}: missing; expected the {produced_by}'s {name}")
    return path


def run_step(name: str, step: Callable[[], object], expected: tuple[type[Exception], ...]) -> int:
    """Runs a step's main body: a known failure becomes one line on stderr and exit status 1,
    anything else propagates with its traceback (a bug)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        step()
    except (StepInputError, *expected) as error:
        print(f"{name} step failed: {error}", file=sys.stderr)
        return 1
    return 0
