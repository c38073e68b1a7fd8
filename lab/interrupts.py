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


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C that knows what it stopped, so the CLI can say so instead of guessing.

    A KeyboardInterrupt still: every `except KeyboardInterrupt` keeps working unchanged.
    """

    def __init__(self, stopped: list[str], what: str = "") -> None:
        super().__init__(what)
        self.stopped = list(stopped)
        self.what = what

    def summary(self) -> str:
        where = f" {self.what}" if self.what else ""
        if not self.stopped:
            return f"stopped{where}; no program of it was still running"
        shown = "; ".join(self.stopped[:8])
        more = f" and {len(self.stopped) - 8} more" if len(self.stopped) > 8 else ""
        return f"stopped{where} and {len(self.stopped)} program(s) it left running: {shown}{more}"


def describe(interrupt: KeyboardInterrupt) -> str:
    """What to tell the user after a Ctrl-C: what was stopped, never a claim nobody checked."""
    if isinstance(interrupt, Interrupted):
        return interrupt.summary()
    return "nothing half-made was left behind"
