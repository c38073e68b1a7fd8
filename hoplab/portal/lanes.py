"""Blocking Docker calls on the portal's shared threads, a bounded number per participant.

A participant is root in their nodes and can make any call into them slow (up to its deadline,
see hoplab.engine.inside). Each participant therefore gets a lane of WIDTH calls in flight; the
rest of theirs wait on the event loop, holding no thread, so one participant never holds more
than WIDTH of the pool's threads and the others' pages and terminals keep theirs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

WIDTH = 2  # calls in flight per participant (a page load needs one, a terminal close one more)


class Lanes:
    def __init__(self, pool: Executor, width: int = WIDTH) -> None:
        self.pool, self.width = pool, width
        self._gates: dict[str, asyncio.Semaphore] = {}

    async def run(self, who: str | None, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) on the pool, once fewer than `width` of who's calls are running.

        who None: a call for the whole room (the seats, the instructor's grid), which reads
        labels and never enters a node, so no participant can slow it.
        """
        loop = asyncio.get_running_loop()
        if who is None:
            return await loop.run_in_executor(self.pool, fn, *args)
        gate = self._gates.setdefault(who, asyncio.Semaphore(self.width))
        async with gate:
            return await loop.run_in_executor(self.pool, fn, *args)
