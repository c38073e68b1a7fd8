"""Ctrl-C handling shared by every place that must finish what it started (rollback, teardown)."""

from __future__ import annotations

import contextlib
import queue
import signal
import sys
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


@contextlib.contextmanager
def finalizer_interrupts_redelivered() -> Iterator[None]:
    """Hand a Ctrl-C that a finalizer swallowed back to the main thread, as a new Ctrl-C.

    A Ctrl-C that lands in a finalizer (weakref.finalize, __del__) cannot propagate: CPython
    prints "Exception ignored in ..." with a traceback and goes on, so the user's Ctrl-C is lost.
    The hook is a C method (SimpleQueue.put), so no Python code runs in the main thread while it
    is called and the re-sent SIGINT can only land after the finalizer is done. A helper thread
    re-sends it, and passes every other unraisable error on to the previous hook. A SIGINT that
    arrives while Ctrl-C is ignored (`sigint_deferred`) is dropped, as a real one would be.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = sys.unraisablehook
    pending: queue.SimpleQueue[object] = queue.SimpleQueue()
    done = object()
    main = threading.main_thread().ident or 0

    def forward() -> None:
        while (unraisable := pending.get()) is not done:
            if issubclass(getattr(unraisable, "exc_type", type(None)), KeyboardInterrupt):
                signal.pthread_kill(main, signal.SIGINT)
            else:
                previous(unraisable)  # type: ignore[arg-type]

    forwarder = threading.Thread(target=forward, name="hoplab-interrupts", daemon=True)
    forwarder.start()
    sys.unraisablehook = pending.put
    try:
        yield
    finally:
        sys.unraisablehook = previous
        pending.put(done)
        forwarder.join(timeout=5)


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
