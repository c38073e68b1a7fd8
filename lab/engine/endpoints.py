"""Serialize endpoint changes per Docker network (moby#42119), while networks stay parallel.

Docker 20.10 keeps a per-network endpoint count that concurrent updates on the same network can
leave wrong; a network whose count never returns to zero cannot be removed until the daemon
restarts. So a container start (adds endpoints) or removal (drops them) holds the locks of every
network it touches. Different networks still proceed in parallel.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator


class EndpointLocks:
    """One lock per network name, made on first use; one instance per Engine (no global)."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def holding(self, networks: Iterable[str]) -> Iterator[None]:
        """Hold the locks of these networks for the block; sorted order, so no deadlock."""
        with self._guard:
            locks = [self._locks.setdefault(n, threading.Lock()) for n in sorted(set(networks))]
        for lock in locks:
            lock.acquire()
        try:
            yield
        finally:
            for lock in reversed(locks):
                lock.release()
