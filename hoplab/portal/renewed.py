"""Values the portal reads from the engine, served from memory and renewed ahead of need.

A page polls /api/me every 2 s, and each answer needs the room's seats and the lab's state:
Docker list calls of 30 to 300 ms each on a loaded engine (`bench/wire.py --profile`). Awaited
on the request's path they were most of the page's time. Here a value older than `soft` is
still served as it is, while one read renews it in the background; only a value older than
`hard` (or none yet, or one dropped) makes the request wait for a read. One read per key is in
flight at a time, however many requests want it; a read started before a drop is not kept.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Renewed(Generic[K, V]):
    def __init__(
        self, soft: float, hard: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.soft, self.hard, self.clock = soft, hard, clock
        self._values: dict[K, tuple[float, V]] = {}
        self._reading: dict[K, asyncio.Future[V]] = {}
        self._drops: dict[K, int] = {}

    async def get(self, key: K, read: Callable[[], Awaitable[V]], fresh: bool = False) -> V:
        """The key's value: at once when younger than `hard` (renewed in the background when
        older than `soft`), else (or when `fresh` is asked for) from a read, the one in flight
        if there is one; a cancelled request does not cancel it."""
        got = None if fresh else self._values.get(key)
        if got is not None:
            age = self.clock() - got[0]
            if age <= self.hard:
                if age > self.soft:
                    self._start(key, read)
                return got[1]
        return await asyncio.shield(self._start(key, read))

    def drop(self, key: K) -> None:
        """Forget the key's value (its lab was reset): the next get reads it anew."""
        self._values.pop(key, None)
        self._reading.pop(key, None)
        self._drops[key] = self._drops.get(key, 0) + 1

    def _start(self, key: K, read: Callable[[], Awaitable[V]]) -> asyncio.Future[V]:
        task = self._reading.get(key)
        if task is None:
            task = asyncio.ensure_future(self._read(key, read, self._drops.get(key, 0)))
            self._reading[key] = task
            task.add_done_callback(lambda done: self._done(key, done))
        return task

    async def _read(self, key: K, read: Callable[[], Awaitable[V]], drops: int) -> V:
        began = self.clock()  # the value's age counts from before the read
        value = await read()
        if self._drops.get(key, 0) == drops:
            self._values[key] = (began, value)
        return value

    def _done(self, key: K, task: asyncio.Future[V]) -> None:
        if self._reading.get(key) is task:
            del self._reading[key]
        if not task.cancelled():
            task.exception()  # seen: a failed renewal keeps the old value until `hard`
