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
from hoplab.errors import Cancelled, HoplabError
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


def bring_up(
    engine: EngineAPI,
    topo: Topology,
    of: str,
    name: str,
    say: Say = _quiet,
    cancel: threading.Event | None = None,
) -> Lab:
    """A fresh lab from topo, labelled as of's grader; nothing is left if it cannot come up, or
    if cancel is set while it comes up (the bring-up rolls back)."""
    reaping.reap(engine, socket.gethostname())  # grader labs (and test labs) of dead processes
    try:
        return api.up(
            topo, name=name, labels=grader_labels(of), engine=engine, say=say, cancel=cancel
        )
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


class Closed(HoplabError):
    """The grader labs were closed (serve's exit, the room's down): no grading starts here."""


CLOSE_WAIT = 120.0  # seconds close() waits for a bring-up in flight to roll back


class GraderLabs:
    """A warm grader lab per check worker: a check pays a reset, not a bring-up.

    Between gradings the grader itself reaps the lab (every process of nobody, every file nobody
    wrote: grading/grader.py), and nobody else ever gets in, so that is a full reset. A lab that
    no longer answers is replaced. close() removes them all (serve's exit); a crash leaves
    orphans that the next bring-up on the host removes.

    close() can come while a check is bringing a lab up (serve's exit with a check running): a
    name counted only once its bring-up returned would then be missed, and its whole lab left
    behind. So a bring-up is counted from its start, close() cancels it (the bring-up rolls
    back) and waits for it, a bring-up that still finishes after close removes its own lab, and
    a closed GraderLabs starts none.
    """

    def __init__(self, engine: EngineAPI, topo: Topology, of: str, workers: int) -> None:
        self.engine, self.topo, self.of = engine, topo, of
        self._free: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._names = [grader_name() for _ in range(workers)]
        for name in self._names:
            self._free.put(name)
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)  # a bring-up ended
        self._up: set[str] = set()
        self._starting: set[str] = set()
        self._closed = threading.Event()  # also the bring-ups' cancel

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def _refuse(self) -> Closed:
        return Closed(
            f"the grader labs of {self.of!r} are closed: no check starts now",
            hint="the portal is stopping or the room was taken down",
        )

    def _bring_up(self, name: str) -> Lab:
        """bring_up, counted in _starting from its start until its lab is known to close()."""
        with self._lock:
            if self.closed:
                raise self._refuse()
            self._starting.add(name)
        try:
            lab = bring_up(self.engine, self.topo, self.of, name, cancel=self._closed)
            with self._lock:
                if not self.closed:
                    self._up.add(name)
                    return lab
            # close() came while it came up and missed the cancel: the lab is this call's to
            # remove, before close() stops waiting for it.
            with sigint_deferred(), contextlib.suppress(Exception):
                self.engine.down(name)
            raise self._refuse()
        except Cancelled as err:
            raise self._refuse() from err
        finally:
            with self._lock:
                self._starting.discard(name)
                self._settled.notify_all()

    @contextlib.contextmanager
    def lab(self) -> Iterator[Lab]:
        """A grader lab for one grading; blocks only while every worker's lab is in use."""
        if self.closed:
            raise self._refuse()
        name = self._free.get()
        try:
            with self._lock:
                warm = name in self._up
            if warm and self.engine.state(name).running:
                from hoplab.runtime.lab import Lab

                lab = Lab.attach(self.engine, name)
            else:
                lab = self._bring_up(name)
            yield lab
        finally:
            self._free.put(name)

    def close(self, wait: float = CLOSE_WAIT) -> None:
        """Remove every grader lab made here, those coming up included; start none after."""
        with self._lock:
            self._closed.set()  # refuses new bring-ups and cancels those in flight
            self._settled.wait_for(lambda: not self._starting, wait)
            names, self._up = sorted(self._up), set()
        for name in names:
            with contextlib.suppress(Exception):
                self.engine.down(name)


class RoomGraders:
    """The grader labs of a room: one GraderLabs on each engine that holds the room's labs, made
    when that engine's first check comes, so a room on several engines grades each participant
    next to their own lab. `topology` gives the topology of a participant's lab (the room's).

    A grading is for a lab of the room that exists; when a grading ends and the room has no lab
    left on that engine (`workshop down` while the portal serves), that engine's grader labs are
    closed too, so none stays warm for a room that is gone. After close(), nothing starts.
    """

    def __init__(
        self, room: str, topology: Callable[[EngineAPI, str], Topology], workers: int
    ) -> None:
        self.room, self.topology, self.workers = room, topology, workers
        self._lock = threading.Lock()
        self._labs: dict[int, GraderLabs] = {}
        self._closed = False

    def _refuse(self) -> Closed:
        return Closed(
            f"the grader labs of workshop {self.room!r} are closed: no check starts now",
            hint="the portal is stopping or the room was taken down",
        )

    def _room_labs(self, engine: EngineAPI) -> list[str]:
        return engine.labs_labelled(L.WORKSHOP, self.room)

    @contextlib.contextmanager
    def lab(self, engine: EngineAPI, participant_lab: str) -> Iterator[Lab]:
        """A grader lab on engine with participant_lab's topology, for one grading."""
        if participant_lab not in self._room_labs(engine):
            raise HoplabError(
                f"lab {participant_lab!r} is not a lab of workshop {self.room!r} on this engine",
                hint="the room was taken down, or the lab is being reset: try again",
            )
        with self._lock:
            if self._closed:
                raise self._refuse()
            labs = self._labs.get(id(engine))
        if labs is None:
            made = GraderLabs(
                engine, self.topology(engine, participant_lab), self.room, self.workers
            )
            with self._lock:
                if self._closed:  # closed while the topology was read: made has no lab yet
                    raise self._refuse()
                labs = self._labs.setdefault(id(engine), made)
        try:
            with labs.lab() as lab:
                yield lab
        finally:
            gone = False
            with contextlib.suppress(Exception):  # an engine that fails here failed the grading
                gone = not self._room_labs(engine)
            if gone:
                labs.close()  # the room went while this grading ran

    def close(self) -> None:
        """Remove every grader lab of the room made here (serve's exit); start none after."""
        with self._lock:
            self._closed = True
            all_labs, self._labs = list(self._labs.values()), {}
        for labs in all_labs:
            labs.close()
