"""Grader labs: where a submission is graded, a lab that no participant has ever entered.

A participant is root in the nodes of their own lab (browser terminals, `hoplab exec`), and root
can make anything that runs there lie: a sitecustomize implant in every python3, a replaced `ss`,
a daemon left from a terminal that answers for an idle program. So nothing in that lab can vouch
for a grade. A graded run happens in a grader lab instead: fresh containers from the node image,
the same topology, no terminals and no exec but the grader's; the submission is the one thing
copied in, and it runs there as nobody (grading/sandbox.py closes hoplab's programs and the
forbidden tools to it).

A grader lab carries the GRADER label (whose submissions it grades) and the owner labels of the
process that made it, so one left by a crash (kill -9, a lost machine) is an orphan that the
next grading on the host removes (engine/reaping.py), and `hoplab clean` removes it like any lab.

- `grader_lab`: one lab for one grading, made and removed around it (`hoplab check`);
- `GraderLabs`: a warm lab per check worker, reset between gradings;
- `RoomGraders`: a room's GraderLabs, one per engine that holds its labs (the portal).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from hoplab import api
from hoplab.engine import reaping
from hoplab.interrupts import sigint_deferred
from hoplab.model import labels as L

if TYPE_CHECKING:
    from hoplab.engine.interface import EngineAPI
    from hoplab.model.topology import Topology
    from hoplab.runtime.lab import Lab

Say = Callable[[str], None]
_count = itertools.count()


def _quiet(_message: str) -> None:
    pass


def grader_labels(of: str) -> dict[str, str]:
    """GRADER, and the owner labels that make a crashed owner's grader lab an orphan."""
    pid = os.getpid()
    start = reaping.process_start(pid)
    return {L.GRADER: of, **reaping.owner_labels(pid, start, socket.gethostname())}


def grader_name() -> str:
    """gr<pid>-<n>: unique per process and call, within the 30 characters of a lab name."""
    return f"gr{os.getpid()}-{next(_count)}"


def bring_up(engine: EngineAPI, topo: Topology, of: str, name: str, say: Say = _quiet) -> Lab:
    """A fresh lab from topo, labelled as of's grader; nothing is left if it cannot come up."""
    reaping.reap(engine, socket.gethostname())  # grader labs (and test labs) of dead processes
    try:
        return api.up(topo, name=name, labels=grader_labels(of), engine=engine, say=say)
    except BaseException:
        with sigint_deferred(), contextlib.suppress(Exception):
            engine.down(name)
        raise


@contextlib.contextmanager
def grader_lab(engine: EngineAPI, topo: Topology, of: str, say: Say = _quiet) -> Iterator[Lab]:
    """One grading's lab: made before it, removed after it whatever happens (Ctrl-C too)."""
    name = grader_name()
    lab = bring_up(engine, topo, of, name, say)
    try:
        yield lab
    finally:
        with sigint_deferred():
            engine.down(name)


class GraderLabs:
    """A warm grader lab per check worker: a check pays a reset, not a bring-up.

    Between gradings the grader itself reaps the lab (every process of nobody, every file nobody
    wrote: grading/grader.py), and nobody else ever gets in, so that is a full reset. A lab that
    no longer answers is replaced. close() removes them all (serve's exit); a crash leaves
    orphans that the next bring-up on the host removes.
    """

    def __init__(self, engine: EngineAPI, topo: Topology, of: str, workers: int) -> None:
        self.engine, self.topo, self.of = engine, topo, of
        self._free: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._names = [grader_name() for _ in range(workers)]
        for name in self._names:
            self._free.put(name)
        self._lock = threading.Lock()
        self._up: set[str] = set()

    @contextlib.contextmanager
    def lab(self) -> Iterator[Lab]:
        """A grader lab for one grading; blocks only while every worker's lab is in use."""
        name = self._free.get()
        try:
            with self._lock:
                warm = name in self._up
            if warm and self.engine.state(name).running:
                from hoplab.runtime.lab import Lab

                lab = Lab.attach(self.engine, name)
            else:
                lab = bring_up(self.engine, self.topo, self.of, name)
                with self._lock:
                    self._up.add(name)
            yield lab
        finally:
            self._free.put(name)

    def close(self) -> None:
        """Remove every grader lab made here."""
        with self._lock:
            names, self._up = sorted(self._up), set()
        for name in names:
            with contextlib.suppress(Exception):
                self.engine.down(name)


class RoomGraders:
    """The grader labs of a room: one GraderLabs on each engine that holds the room's labs, made
    when that engine's first check comes, so a room on several engines grades each participant
    next to their own lab. `topology` gives the topology of a participant's lab (the room's)."""

    def __init__(
        self, room: str, topology: Callable[[EngineAPI, str], Topology], workers: int
    ) -> None:
        self.room, self.topology, self.workers = room, topology, workers
        self._lock = threading.Lock()
        self._labs: dict[int, GraderLabs] = {}

    @contextlib.contextmanager
    def lab(self, engine: EngineAPI, participant_lab: str) -> Iterator[Lab]:
        """A grader lab on engine with participant_lab's topology, for one grading."""
        with self._lock:
            labs = self._labs.get(id(engine))
        if labs is None:
            made = GraderLabs(
                engine, self.topology(engine, participant_lab), self.room, self.workers
            )
            with self._lock:
                labs = self._labs.setdefault(id(engine), made)
        with labs.lab() as lab:
            yield lab

    def close(self) -> None:
        """Remove every grader lab of the room made here (serve's exit)."""
        with self._lock:
            all_labs, self._labs = list(self._labs.values()), {}
        for labs in all_labs:
            labs.close()
