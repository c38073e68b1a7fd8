"""Where a learner is, per lab: which steps passed and how many hints each has shown.

A JSON file under the user's state directory ($HOPLAB_STATE, else $XDG_STATE_HOME/hoplab, else
~/.local/state/hoplab), at lessons/<lab>.json. Not Docker labels: labels are fixed when a
container is created and go with it, and progress must survive `down` and `up`; nor a file in a
node, which the learner (root there) could edit and which `down` removes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def _file(lab: str) -> Path:
    base = os.environ.get("HOPLAB_STATE") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "hoplab"
    )
    return Path(base) / "lessons" / f"{lab}.json"


class Progress:
    def __init__(self, lab: str) -> None:
        self.path = _file(lab)
        try:
            self.data: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def _lesson(self, lesson: str) -> dict[str, Any]:
        return self.data.setdefault(lesson, {"passed": [], "hints": {}})

    def passed(self, lesson: str) -> set[int]:
        return set(self.data.get(lesson, {}).get("passed", []))

    def current(self, lesson: str, steps: int) -> int:
        """The first step not passed yet (the last one when all have)."""
        done = self.passed(lesson)
        return next((n for n in range(1, steps + 1) if n not in done), steps)

    def record(self, lesson: str, number: int, ok: bool) -> int:
        """Note a verify; returns how many times this step has failed (picks the next hint)."""
        entry = self._lesson(lesson)
        if ok:
            entry["passed"] = sorted(set(entry["passed"]) | {number})
            entry["hints"].pop(str(number), None)
            failures = 0
        else:
            failures = entry["hints"].get(str(number), 0) + 1
            entry["hints"][str(number)] = failures
        self._save()
        return failures

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        tmp.replace(self.path)
