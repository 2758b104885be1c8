"""A function app that imports in the first serving process only: an extra process (a
multiprocessing child) fails while it starts, as one with a broken environment would."""

import multiprocessing

from tests.local_host_test_app import app  # noqa: F401 - what the first process serves

if multiprocessing.parent_process() is not None:
    raise RuntimeError("this app does not start in an extra process")
