"""Check runs from the portal: the same grader as `hoplab check`, one run at a time per lab.

Like `hoplab check`, a run grades in a grader lab (workshop/graderlab.py), never in the
participant's own lab, where they are root; the grader labs stay warm, one per check worker.

Runs go to a few worker threads shared by the room (the machine has few cores: queued runs wait
their turn rather than slowing every lab), a participant has at most one run queued or running,
and may start one every MIN_INTERVAL seconds. The latest grade per participant and assignment
is kept in the room's state dir, so the instructor's grid survives a restart.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hoplab import grading
from hoplab.engine.interface import EngineAPI
from hoplab.grading import outputs
from hoplab.grading.grader import MAX_BYTES, Grade, grade
from hoplab.portal.tokens import write_private
from hoplab.workshop.graderlab import RoomGraders

MIN_INTERVAL = 5.0  # seconds between two check starts of one participant


class Busy(Exception):
    """A run of this participant is queued or running, or the last one started too recently."""


def record(g: Grade) -> dict[str, Any]:
    """What the page and the grid show of a grade, plus Gradescope's results.json for export."""
    return {
        "assignment": g.assignment,
        "passed": g.passed,
        "total": len(g.checks),
        "ok": g.ok,
        "seconds": round(g.seconds, 2),
        "when": time.time(),
        "checks": [asdict(c) | {"status": str(c.status)} for c in g.checks],
        "gradescope": outputs.gradescope(g),
    }


class Grades:
    def __init__(
        self, engine: EngineAPI, workers: Executor, folder: Path, graders: RoomGraders
    ) -> None:
        self.engine, self.workers, self.graders = engine, workers, graders
        self.path = folder / "grades.json"
        self.latest: dict[str, dict[str, dict]] = {}
        if self.path.exists():
            self.latest = json.loads(self.path.read_text())
        self.running: dict[str, dict[str, Any]] = {}  # participant -> what is queued or running
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()
        self._lab_locks: dict[str, threading.Lock] = {}
        self.finished: dict[str, dict[str, Any]] = {}  # participant -> their last finished run

    def lab_lock(self, lab: str) -> threading.Lock:
        """Held by a check run and by a reset of the lab: a reset never pulls a lab from under a
        run."""
        with self._lock:
            return self._lab_locks.setdefault(lab, threading.Lock())

    def start(
        self,
        participant: str,
        lab: str,
        assignment: str,
        source: bytes,
        on_done: Callable[[str], None] = lambda p: None,
        engine: EngineAPI | None = None,
    ) -> dict[str, Any]:
        """Queue a run on the lab's engine (default: the portal's first); raises Busy, or
        InputError for an unknown assignment or a large file."""
        on = engine or self.engine
        a = grading.select(assignment)
        if len(source) > MAX_BYTES:
            raise ValueError(f"the program is {len(source)} bytes; at most {MAX_BYTES}")
        with self._lock:
            if participant in self.running:
                raise Busy("a check of yours is queued or running: wait for its result")
            since = time.monotonic() - self._started.get(participant, -1e9)
            if since < MIN_INTERVAL:
                raise Busy(f"one check every {MIN_INTERVAL:.0f} s: try again in a moment")
            self._started[participant] = time.monotonic()
            run: dict[str, Any] = {
                "assignment": a.name,
                "state": "queued",
                "checks": [],
                "queued": time.time(),
            }
            self.running[participant] = run
            lab_lock = self._lab_locks.setdefault(lab, threading.Lock())  # see lab_lock()

        def job() -> None:
            try:
                with (
                    lab_lock,
                    self.graders.lab(on, lab) as grader_lab,
                    tempfile.TemporaryDirectory(prefix="hoplab-check-") as tmp,
                ):
                    run["state"] = "running"
                    path = Path(tmp) / a.program
                    path.write_bytes(source)
                    # In a grader lab, never the participant's own: they are root there.
                    g = grade(
                        grader_lab,
                        a,
                        path,
                        lambda c: run["checks"].append({"name": c.name, "status": str(c.status)}),
                    )
                    result = record(g)
                    result["gradescope"]["output"] += f" ({participant}, lab {lab})"
                    with self._lock:
                        self.latest.setdefault(participant, {})[a.name] = result
                        write_private(self.path, json.dumps(self.latest))
                    run["result"] = result
            except Exception as err:  # shown to the participant; the portal keeps serving
                run["error"] = f"{type(err).__name__}: {err}"
            finally:
                run["state"] = "done"
                with self._lock:
                    self.running.pop(participant, None)
                    self.finished[participant] = run
                on_done(participant)

        self.finished.pop(participant, None)
        self.workers.submit(job)
        return run

    def status(self, participant: str) -> dict[str, Any] | None:
        """The run queued or running, else the one that finished last (once read, it stays)."""
        return self.running.get(participant) or self.finished.get(participant)
