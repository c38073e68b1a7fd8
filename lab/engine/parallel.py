"""Bounded parallel work that never leaves a call in flight behind it, and rollback on failure.

Both are plain thread logic with no Docker in them, so the guarantees the engine's rollback rests
on (every started call has finished before we roll back; Ctrl-C cannot cut a rollback) are
covered by unit tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from hoplab.engine.state import Progress
from hoplab.interrupts import sigint_deferred

T = TypeVar("T")
R = TypeVar("R")


def parallel(
    fn: Callable[[T], Any], items: Iterable[T], phase: str, progress: Progress, workers: int
) -> list[Any]:
    """Run fn over items with bounded workers; wait for every started call before raising.

    Waiting matters: an in-flight create that finishes after we roll back would leak. After the
    first failure (or Ctrl-C in the caller) no further call starts, even one a worker has
    already taken from the queue; the first error is raised.
    """
    items = list(items)
    if not items:
        return []
    stop = threading.Event()

    def guarded(item: T) -> Any:
        if stop.is_set():
            raise _Skipped
        try:
            return fn(item)
        except BaseException:
            stop.set()
            raise

    progress(phase, 0, len(items))
    pool = ThreadPoolExecutor(max_workers=min(workers, len(items)))
    futures: list[Future] = [pool.submit(guarded, item) for item in items]
    try:
        pending = set(futures)
        done_count = 0
        while pending and not stop.is_set():
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
            done_count += len(done)
            progress(phase, done_count, len(items))
    except BaseException:
        stop.set()
        raise
    finally:
        # Also runs on KeyboardInterrupt: cancel what has not started, finish what has.
        pool.shutdown(wait=True, cancel_futures=True)
    raised = [f.exception() for f in futures if not f.cancelled()]
    errors = [e for e in raised if e is not None and not isinstance(e, _Skipped)]
    if errors:
        raise errors[0]
    return [f.result() for f in futures]


class _Skipped(Exception):
    """A call not started because an earlier one failed."""


def or_roll_back(build: Callable[[], R], roll_back: Callable[[], object]) -> R:
    """build(), or on any failure (Ctrl-C and cancel included) roll_back() and re-raise.

    build must have waited for its own in-flight calls before it raises (parallel does); the
    rollback itself runs with Ctrl-C deferred so that a second one cannot leave half a lab.
    """
    try:
        return build()
    except BaseException:
        with sigint_deferred():
            roll_back()
        raise
