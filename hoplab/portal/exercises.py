"""Exercise runs from the portal: any exercise of the catalogue, in the participant's own lab.

A run is what `hoplab run EXERCISE` does (hoplab.exercises.runner.run_one) in the lab the
participant's token names, and its result is shown as report.html shows it: the same section,
HTML fragment and ladder SVG (hoplab.draw.html.section and fragment), never a second renderer.

Not a grade. The participant is root in the nodes the exercise runs in, so anything they left
there can change what it sees; a run teaches, it never vouches. Runs are kept here, in memory,
and never reach Grades, the instructor's grid or the exports (grades come from `check`, in
grader labs the participant never touched).

Bounded on every side, because root in the nodes can make any exec slow:
- a pool of WORKERS threads of its own: neither the check workers nor the portal's I/O threads,
  so exercise runs never slow a page, a terminal or a check;
- one run per participant queued or running, and one start every MIN_INTERVAL seconds;
- a DEADLINE: past it the exercise starts no new exec (each exec has its own deadline already,
  hoplab.engine.inside), so a run ends within DEADLINE plus one exec's deadline, and its clean
  up (stop_all) still runs, each of its calls bounded by its own deadline;
- a lab's lock, shared with checks and resets: a reset never pulls the lab from under a run.
"""

from __future__ import annotations

import itertools
import secrets
import tempfile
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from hoplab import exercises
from hoplab.engine.interface import EngineAPI
from hoplab.errors import HoplabError

if TYPE_CHECKING:
    from hoplab.runtime.lab import Lab

WORKERS = 2  # exercise runs at once for the whole portal: one per core of this machine
MIN_INTERVAL = 10.0  # seconds between two starts of one participant
DEADLINE = 120.0  # seconds an exercise may start new execs for (the slowest takes about 30)
KEEP = 5  # finished runs kept per participant, newest first


class Busy(Exception):
    """A run of this participant is queued or running, or the last one started too recently."""


class Deadline:
    """An engine that refuses the exercise's new execs once `seconds` have passed.

    Only the exercise's own steps are refused (while its Lab is gathering evidence, see
    Lab.evidence): the runner's reap before and its stop_all after still run, each bounded by
    its exec's own deadline, so what the exercise started is stopped even after an overrun.
    Every other engine call passes through unchanged.
    """

    def __init__(self, engine: EngineAPI, seconds: float) -> None:
        self.engine, self.seconds = engine, seconds
        self.until = time.monotonic() + seconds
        self.lab: Lab | None = None
        self.overran = False

    def expire(self) -> None:
        """End the run at its next exec (the portal is shutting down)."""
        self.until = 0.0

    def run(self, container: str, cmd: list[str], timeout: float = 300.0) -> Any:
        if time.monotonic() > self.until and (self.lab is None or self.lab.gathering):
            self.overran = True
            raise HoplabError(
                f"the exercise ran past its deadline of {self.seconds:g} s",
                hint="a program in your lab may hang or hold a port: reset your lab, run it again",
            )
        return self.engine.run(container, cmd, timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


def catalogue() -> list[dict[str, str]]:
    """What the page lists: every exercise, in teaching order."""
    return [{"name": e.name, "summary": e.summary} for e in exercises.catalogue()]


def result_record(result: Any) -> dict[str, Any]:
    return {
        "name": result.name,
        "status": str(result.status),
        "seconds": round(result.seconds, 2),
        "checks": [asdict(c) | {"status": str(c.status)} for c in result.checks],
    }


class ExerciseRuns:
    """Runs by participant: started, looked up and listed only under the participant's name."""

    def __init__(
        self,
        workers: Executor | None = None,
        *,
        deadline: float = DEADLINE,
        min_interval: float = MIN_INTERVAL,
    ) -> None:
        self.workers = workers or ThreadPoolExecutor(
            max_workers=WORKERS, thread_name_prefix="portal-exercise"
        )
        self.deadline, self.min_interval = deadline, min_interval
        self.running: dict[str, dict[str, Any]] = {}  # participant -> queued or running
        self.finished: dict[str, list[dict[str, Any]]] = {}  # participant -> newest first
        self._started: dict[str, float] = {}
        self._deadlines: dict[str, Deadline] = {}  # participant -> their run's, while it runs
        self._lock = threading.Lock()
        self._drawing = threading.Lock()  # matplotlib's rc_context is process-wide state
        self._ids = itertools.count(1)
        self.closed = False

    def start(
        self,
        participant: str,
        lab: str,
        name: str,
        engine: EngineAPI,
        lab_lock: threading.Lock,
    ) -> dict[str, Any]:
        """Queue a run of exercise `name` in `lab` (the participant's, found by the caller from
        their token). Raises InputError for an unknown exercise, Busy when it must wait."""
        (exercise,) = exercises.select([name])
        with self._lock:
            if self.closed:
                raise Busy("the portal is shutting down")
            if participant in self.running:
                raise Busy("an exercise of yours is queued or running: wait for its result")
            since = time.monotonic() - self._started.get(participant, -1e9)
            if since < self.min_interval:
                raise Busy(
                    f"one exercise every {self.min_interval:.0f} s: "
                    f"try again in {self.min_interval - since:.0f} s"
                )
            self._started[participant] = time.monotonic()
            run: dict[str, Any] = {
                "id": f"{next(self._ids)}-{secrets.token_hex(4)}",
                "exercise": exercise.name,
                "lab": lab,
                "state": "queued",
                "queued": time.time(),
            }
            self.running[participant] = run

        def job() -> None:
            try:
                if not lab_lock.acquire(timeout=self.deadline):
                    raise HoplabError("your lab stayed busy (a reset or a check): try again")
                try:
                    self._run(participant, run, exercise, lab, engine)
                finally:
                    lab_lock.release()
            except Exception as err:  # shown to the participant; the portal keeps serving
                run["error"] = str(err) if isinstance(err, HoplabError) else repr(err)[:400]
            finally:
                run["state"] = "done"
                with self._lock:
                    self.running.pop(participant, None)
                    self._deadlines.pop(participant, None)
                    kept = self.finished.setdefault(participant, [])
                    kept.insert(0, run)
                    del kept[KEEP:]

        self.workers.submit(job)
        return dict(run)

    def _run(
        self, participant: str, run: dict[str, Any], exercise: Any, lab: str, engine: EngineAPI
    ) -> None:
        from hoplab.draw import html
        from hoplab.exercises import runner
        from hoplab.runtime.lab import Lab

        bounded = Deadline(engine, self.deadline)
        with self._lock:
            if self.closed:
                raise HoplabError("the portal is shutting down")
            self._deadlines[participant] = bounded
        run["state"] = "running"
        run["started"] = time.time()
        with tempfile.TemporaryDirectory(prefix="hoplab-exercise-") as tmp:
            attached = Lab.attach(cast(EngineAPI, bounded), lab)
            bounded.lab = attached
            result = runner.run_one(attached, exercise, Path(tmp))
            where = html.directory(attached)  # one exec per node: the MACs for the ladder
            with self._drawing:
                section = html.section(exercise, result, Path(tmp), where)
        # The captures go with the temporary folder: the page links none.
        run["result"] = result_record(result)
        run["html"] = html.fragment(replace(section, pcaps=()))
        run["overran"] = bounded.overran

    def status(self, participant: str) -> dict[str, Any] | None:
        """The participant's run queued or running, else their latest finished one."""
        with self._lock:
            found = self.running.get(participant) or next(
                iter(self.finished.get(participant, [])), None
            )
            return dict(found) if found else None

    def get(self, participant: str, run_id: str) -> dict[str, Any] | None:
        """One of the participant's own runs by id; another's id is not found."""
        with self._lock:
            mine = [self.running.get(participant), *self.finished.get(participant, [])]
            found = next((r for r in mine if r and r["id"] == run_id), None)
            return dict(found) if found else None

    def close(self, wait: bool = True) -> None:
        """Refuse new runs, end those running at their next exec, and wait for their clean up."""
        with self._lock:
            self.closed = True
            for bounded in self._deadlines.values():
                bounded.expire()
        self.workers.shutdown(wait=wait, cancel_futures=True)
