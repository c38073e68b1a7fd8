"""A per-participant request rate: at most `per_window` requests in any `window` seconds.

A sliding window, not a minimum gap: a learner who verifies and at once opens the next step is
served, a script that floods is refused (429) once it has used its window.
"""

from __future__ import annotations

import time
from collections import deque


class Rate:
    def __init__(self, per_window: int, window: float) -> None:
        self.per_window, self.window = per_window, window
        self._asked: dict[str, deque[float]] = {}

    def allow(self, participant: str) -> bool:
        """Count one request of the participant; False once they asked too often lately."""
        now = time.monotonic()
        asked = self._asked.setdefault(participant, deque())
        while asked and now - asked[0] > self.window:
            asked.popleft()
        if len(asked) >= self.per_window:
            return False
        asked.append(now)
        return True
