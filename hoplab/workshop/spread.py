"""A room spread over several Docker engines: each lab whole on one, found again by labels.

There is no state file: `status` and `down` ask every engine of the room for the labs labelled
with it. An engine out of reach is never fatal to the rest: at `up` its share goes to the others
(placement.py), `status` shows it as unreachable, and `down` removes what it can reach and names
what it could not. Subnets are remapped per engine by each engine's own planner, since each has
its own address space; one engine never holds two overlapping subnets.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Network

from hoplab.engine.engines import Reached, require
from hoplab.engine.interface import EngineAPI
from hoplab.engine.parallel import each
from hoplab.engine.state import LabState
from hoplab.model.topology import Topology
from hoplab.workshop import room as R
from hoplab.workshop.placement import EngineLine, Free, Placement, place

Say = Callable[[str], None]


def on_docker(reached: Reached) -> EngineAPI:
    """The engine object for a reached engine; tests pass their own (FakeEngine) instead."""
    return require(reached)


EngineFor = Callable[[Reached], EngineAPI]


@dataclass
class SpreadReport:
    """The room's report, where each lab went, and the engines that could not be reached."""

    report: R.RoomReport
    placement: Placement
    unreachable: list[Reached] = field(default_factory=list)


def _free(reached: Reached, line: EngineLine | None, room_labs: int, graders_to_come: int) -> Free:
    size = reached.size
    assert size is not None, "reach() measures every engine it reaches for up"
    return Free(
        reached.name,
        size.cpus,
        size.memory,
        room_labs,
        size.nodes,
        line.labs if line else None,
        line.nodes if line else None,
        graders_to_come=graders_to_come,
    )


def up(
    reached: list[Reached],
    topo: Topology,
    room: R.Room,
    *,
    lines: tuple[EngineLine, ...] = (),
    on_done: R.OnDone = lambda o, d, t: None,
    say: Say = lambda m: None,
    parallel: int = R.PARALLEL,
    stop: threading.Event | None = None,
    pool: IPv4Network | None = None,
    engine_for: EngineFor = on_docker,
) -> SpreadReport:
    """Place the room's labs on the reachable engines and bring them up, every engine at once.

    Every reachable engine is checked for lab names held by strangers before anything is made.
    Unreachable engines are skipped with a warning. A first failure (or `stop`) stops the whole
    room, on every engine, as room.up does on one.
    """
    caps = {line.name: line for line in lines}
    live = [r for r in reached if r.up]
    unreachable = [r for r in reached if not r.up]
    for r in unreachable:
        say(f"engine {r.name} is unreachable ({r.error}): its share goes to the other engines")
    engines = {r.name: engine_for(r) for r in live}
    kept = {lab: name for name, e in engines.items() for lab in R.check_free(e, room)}
    cpus = sum(r.size.cpus for r in live if r.size is not None)  # the portal's check workers
    placement = place(
        [s.lab for s in room.seats],
        [
            _free(
                r,
                caps.get(r.name),
                list(kept.values()).count(r.name),
                R.graders_to_come(engines[r.name], room.name, cpus),
            )
            for r in live
        ],
        len(topo.nodes),
        kept,
    )
    stop = stop or threading.Event()
    report = R.RoomReport(room.name)
    total = len(room.seats)
    lock = threading.Lock()

    def done(outcome: R.Outcome, _d: int, _t: int) -> None:
        with lock:
            report.add(outcome, on_done, total)

    for seat in room.seats:
        if seat.lab in placement.unplaced:
            done(R.Outcome(seat, R.SeatAction.UNPLACED, error=placement.why), 0, 0)

    def one(name: str) -> None:
        seats = tuple(s for s in room.seats if placement.where.get(s.lab) == name)
        part = dataclasses.replace(room, seats=seats, engine=name)
        got = R.up(
            engines[name],
            topo,
            part,
            on_done=done,
            say=lambda m: say(f"{name}: {m}"),
            parallel=parallel,
            stop=stop,
            pool=pool,
        )
        with lock:
            report.interrupted |= got.interrupted

    busy = [name for name in engines if placement.on(name)]
    report.interrupted |= each(one, busy, len(busy), stop)
    report.skip_the_rest(room.seats, on_done)
    report.outcomes.sort(key=lambda o: room.seats.index(o.seat))
    return SpreadReport(report, placement, unreachable)


@dataclass
class EngineLabs:
    """One engine's part of a room: its labs, or why it could not be read or emptied."""

    engine: str
    labs: list[LabState] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    error: str = ""


def status(
    reached: list[Reached], room: str | None, engine_for: EngineFor = on_docker
) -> list[EngineLabs]:
    """The room's labs on every engine (room None: every hoplab lab, as `hoplab ls` lists them),
    read from labels; an engine out of reach says so."""

    def one(r: Reached) -> EngineLabs:
        if not r.up:
            return EngineLabs(r.name, error=f"unreachable: {r.error}")
        engine = engine_for(r)
        try:
            labs = engine.labs()
            if room is not None:
                mine = set(R.room_labs(engine, room))
                labs = [s for s in labs if s.name in mine]
            return EngineLabs(r.name, labs)
        except Exception as err:  # an engine that goes away between ping and list
            return EngineLabs(r.name, error=f"unreachable: {err}")

    with ThreadPoolExecutor(max_workers=max(1, len(reached))) as workers:
        return list(workers.map(one, reached))


def down(
    reached: list[Reached],
    room: str,
    *,
    on_done: Callable[[str, int, int], None] = lambda lab, d, t: None,
    engine_for: EngineFor = on_docker,
) -> list[EngineLabs]:
    """Remove the room's labs on every engine it can reach, all engines at once.

    An engine that is out of reach, or fails midway, is reported with what it still holds; the
    others are emptied regardless.
    """
    lock = threading.Lock()
    count = [0]

    def tick(lab: str, _d: int, _t: int) -> None:
        with lock:
            count[0] += 1
            on_done(lab, count[0], 0)

    def one(r: Reached) -> EngineLabs:
        if not r.up:
            return EngineLabs(r.name, error=f"unreachable: {r.error}")
        try:
            return EngineLabs(r.name, removed=R.down(engine_for(r), room, on_done=tick))
        except Exception as err:
            return EngineLabs(r.name, error=str(err))

    with ThreadPoolExecutor(max_workers=max(1, len(reached))) as workers:
        return list(workers.map(one, reached))
