"""Ctrl-C handling shared by every place that must finish what it started (rollback, teardown)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Ignore Ctrl-C for the block, so a second one cannot cut a cleanup half-way and leak.

    Only the main thread may change signal handlers; elsewhere the block just runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
