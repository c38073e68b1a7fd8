"""Bounded parallel work that never leaves a call in flight behind it, and rollback on failure.

(Threads here are "workers": in hoplab a "pool" is the subnet pool that moved subnets come from.)

Both are plain thread logic with no Docker in them, so the guarantees the engine's rollback rests
on (every started call has finished before we roll back; Ctrl-C cannot cut a rollback) are
covered by unit tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from hoplab.engine.state import Progress
from hoplab.interrupts import sigint_deferred

T = TypeVar("T")
R = TypeVar("R")


class Workers:
    """Bounded worker threads whose close() waits for every call that began, and lets no other
    begin.

    ThreadPoolExecutor.shutdown(wait=True) joins only the threads it knows of. submit() queues the
    call, then starts a new thread and waits for it to come up; a Ctrl-C that lands in that wait
    leaves the thread out of the executor's set, yet the thread runs the queued call: a create
    that a rollback would not wait for, which lands after the teardown listed and leaks. Here
    each call checks in at a gate as it begins, so close() sees it whichever thread runs it.
    """

    def __init__(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max(1, workers))
        self._cond = threading.Condition()
        self._open = True
        self._running = 0

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[Any]:
        return self._executor.submit(self._call, fn, args)

    def _call(self, fn: Callable[..., R], args: tuple[Any, ...]) -> R:
        with self._cond:
            if not self._open:
                raise _Skipped
            self._running += 1
        try:
            return fn(*args)
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def close(self) -> None:
        """Let no further call begin and wait for those running; a second Ctrl-C cannot cut
        the wait (it would leave a call in flight behind the rollback that follows)."""
        with sigint_deferred():
            with self._cond:
                self._open = False
                self._cond.wait_for(lambda: self._running == 0)
            self._executor.shutdown(wait=True, cancel_futures=True)


def parallel(
    fn: Callable[[T], Any], items: Iterable[T], phase: str, progress: Progress, workers: int
) -> list[Any]:
    """Run fn over items with bounded workers; wait for every started call before raising.

    Waiting matters: an in-flight create that finishes after we roll back would leak. After the
    first failure (or Ctrl-C in the caller, even during a submit) no further call starts, even
    one a worker has already taken from the queue; the first error is raised.
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
    threads = Workers(min(workers, len(items)))
    try:
        futures: list[Future[Any]] = [threads.submit(guarded, item) for item in items]
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
        # Also runs on KeyboardInterrupt: nothing new begins, what began is finished.
        threads.close()
    _raise_first(futures)
    return [f.result() for f in futures]


def _raise_first(futures: list[Future[Any]]) -> None:
    """Raise the first error among calls that ran (one never begun is no error)."""
    raised = [f.exception() for f in futures if not f.cancelled()]
    errors = [e for e in raised if e is not None and not isinstance(e, _Skipped)]
    if errors:
        raise errors[0]


class _Skipped(Exception):
    """A call not started because an earlier one failed, or its workers were closed."""


def each(
    fn: Callable[[T], object], items: Sequence[T], workers: int, stop: threading.Event
) -> bool:
    """fn over items on bounded workers, for a front end that waits for them and must answer
    Ctrl-C at once (a workshop room, a room spread over engines); True if a Ctrl-C came.

    The main thread waits in short steps, so a Ctrl-C lands at once, even while calls are still
    being submitted: it sets stop (a running fn sees it and winds down: a lab rolls back), lets
    no further call begin, and waits for those that began; a second Ctrl-C cannot cut that wait.
    fn reports its own result, so none is lost to a Ctrl-C that lands inside a submit. The
    first error a call raised is raised once every call has ended.
    """
    threads = Workers(min(workers, len(items)))
    futures: list[Future[Any]] = []
    interrupted = False
    try:
        for item in items:
            futures.append(threads.submit(fn, item))
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.2)
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
    finally:
        threads.close()
    _raise_first(futures)
    return interrupted


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
