"""The lab drawings the portal serves: drawn once per lab version, asked for at a bounded rate.

Each drawing runs Graphviz's `dot` (about 50-100 ms of CPU on a 2-core host). Uncached, 48
requests in flight from one participant slowed every other page of the room several times over.
A lab's drawing only changes with its state (nodes, containers, addresses), so it is kept per
lab and state; requests that come while it is being drawn wait for that one drawing. A
participant may ask PER_WINDOW times in WINDOW seconds; more is refused (429).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from hoplab.portal.limits import Rate

WINDOW = 60.0  # seconds
PER_WINDOW = 60  # drawings a participant may ask for in WINDOW (a page asks once per load)


class Drawings:
    def __init__(self, per_window: int = PER_WINDOW, window: float = WINDOW) -> None:
        self.rate = Rate(per_window, window)
        self.allow = self.rate.allow  # counts one request; False once asked too often lately
        self.drawn = 0  # how many drawings were started: the tests count dot's runs with it
        self._kept: dict[str, tuple[str, asyncio.Future]] = {}  # lab -> (version, drawing)

    async def get(self, lab: str, state: Any, draw: Callable[[], Awaitable[str]]) -> str:
        """The drawing of this version of the lab (its state's repr), drawn at most once.

        A failed drawing is kept too (Graphviz missing does not mend itself between requests);
        a new version of the lab, after a reset, is drawn afresh.
        """
        version = repr(state)
        kept = self._kept.get(lab)
        if kept is None or kept[0] != version:
            self.drawn += 1
            kept = (version, asyncio.ensure_future(draw()))
            self._kept[lab] = kept
        return await asyncio.shield(kept[1])
