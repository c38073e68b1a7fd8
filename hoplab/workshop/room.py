"""A room of labs: one lab per participant, side by side on one engine, up and down as a whole.

Every node of a room's labs carries `hoplab.workshop=<room>` and `hoplab.owner=<participant>`, so
the room is found again from the engine alone and `workshop down` removes exactly its own labs.
Rosters, names and the pool are checked before the engine is touched: bad input creates nothing.
Bring-up runs a few labs at a time; each lab rolls itself back on failure, and a stop (Ctrl-C or
one lab's error) makes the labs still in flight roll back too, so a room is never left with a
half-made lab, only with whole labs that the report names.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Network
from pathlib import Path

from hoplab import api, resources
from hoplab.engine.interface import EngineAPI
from hoplab.engine.parallel import each
from hoplab.engine.state import UpAction
from hoplab.errors import Cancelled, HoplabError, InputError
from hoplab.model import labels as L
from hoplab.model.load import LAB_NAME_HINT, check_lab_name
from hoplab.model.plan import parse_pool
from hoplab.model.topology import Topology
from hoplab.workshop.placement import (
    NODE_MEMORY,
    Free,
    check_workers,
    memory_bytes,
    refusal,
)

WORKSHOP = L.WORKSHOP  # the label key on every node of a room's labs (defined in model.labels)
ENGINE = "hoplab.engine"  # the engine a room lab was placed on, as `workshop up` named it
DEFAULT_NAME = "workshop"
PARALLEL = 4  # labs brought up at once: more only queues on a 2-core engine
MAX_PARTICIPANTS = 100

Say = Callable[[str], None]
OnDone = Callable[["Outcome", int, int], None]  # an outcome, how many so far, how many seats


@dataclass(frozen=True)
class Seat:
    """One participant and the lab they get; line is the roster line (0 when generated)."""

    participant: str
    lab: str
    line: int = 0


@dataclass(frozen=True)
class Room:
    """A workshop: its name, its seats and where the seats came from (a roster file or '')."""

    name: str
    seats: tuple[Seat, ...]
    source: str = ""
    engine: str = ""  # the engine these seats were placed on, as the room names it ('' alone)

    def labels(self, seat: Seat) -> dict[str, str]:
        found = {WORKSHOP: self.name, L.OWNER: seat.participant}
        return found | ({ENGINE: self.engine} if self.engine else {})


# --- pure: names, rosters, pool ------------------------------------------------------------------


def check_room_name(name: str) -> str:
    """A room's name becomes a label value and the default lab prefix, so it obeys lab rules."""
    return check_lab_name(name, key="--workshop")


def parse_roster(text: str, source: str = "") -> tuple[Seat, ...]:
    """One participant per line; blank lines and '#' comments are skipped.

    Each name becomes a lab name, so it must be a valid one; a name listed twice would give two
    participants one lab, so it is refused with both line numbers.
    """
    seats: list[Seat] = []
    first: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        name = raw.split("#", 1)[0].strip()
        if not name:
            continue
        check_lab_name(name, source=source, line=number, key="participant")
        if name in first:
            raise InputError(
                f"participant {name!r} is listed twice (first on line {first[name]})",
                file=source,
                line=number,
                hint="each participant gets one lab: list every name once",
            )
        first[name] = number
        seats.append(Seat(name, name, number))
    if not seats:
        raise InputError(
            "the roster lists no participants",
            file=source,
            hint="write one participant name per line, e.g. 'alice'",
        )
    if len(seats) > MAX_PARTICIPANTS:
        raise InputError(
            f"the roster lists {len(seats)} participants; at most {MAX_PARTICIPANTS}",
            file=source,
            hint="split the room into several workshops (--workshop NAME)",
        )
    return tuple(seats)


def read_roster(path: str | Path) -> tuple[Seat, ...]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(
            f"cannot read the roster: {getattr(err, 'strerror', None) or err}",
            file=str(path),
            hint="give a UTF-8 text file with one participant name per line",
        ) from None
    return parse_roster(text, str(path))


def numbered_seats(count: int, prefix: str) -> tuple[Seat, ...]:
    """Participants prefix01..prefixNN; digits are padded so that the labs sort in order."""
    if not 1 <= count <= MAX_PARTICIPANTS:
        raise InputError(
            f"{count} participants: give 1 to {MAX_PARTICIPANTS}",
            key="--participants",
            hint="for a bigger room, run several workshops with different --workshop names",
        )
    width = max(2, len(str(count)))
    names = [f"{prefix}{i:0{width}d}" for i in range(1, count + 1)]
    for name in (names[0], names[-1]):
        try:
            check_lab_name(name)
        except InputError:
            raise InputError(
                f"prefix {prefix!r} gives the invalid lab name {name!r}",
                key="--prefix",
                hint=f"with {width} digits added, the name must still {LAB_NAME_HINT[4:]}",
            ) from None
    return tuple(Seat(n, n, 0) for n in names)


def check_pool(raw: str, topo: Topology, labs: int) -> IPv4Network:
    """The room's subnet pool: private, and big enough to give every lab its own subnets.

    A lab moves a taken subnet to one of the same size in the pool, so each of the topology's
    subnets must fit in it, and all labs together must fit (counted as if every lab moved).
    """
    pool = parse_pool(raw, "--pool")
    widest = min(n.subnet.prefixlen for n in topo.networks)
    if widest < pool.prefixlen:
        raise InputError(
            f"pool {pool} is smaller than the topology's /{widest} subnet",
            key="--pool",
            hint=f"give a pool of /{widest} or wider",
        )
    per_lab = sum(n.subnet.num_addresses for n in topo.networks)
    if per_lab * labs > pool.num_addresses:
        raise InputError(
            f"pool {pool} holds {pool.num_addresses} addresses; {labs} labs of "
            f"{topo.source or topo.name} need up to {per_lab * labs}",
            key="--pool",
            hint=f"give a wider pool: a /16 holds {65536 // per_lab} labs of this topology",
        )
    return pool


# --- on the engine ---------------------------------------------------------------------------


class SeatAction(StrEnum):
    """What became of one seat's lab; the value is what the CLI and JSON say."""

    CREATED = UpAction.CREATED.value  # the first four are what `up` did with the lab
    UNCHANGED = UpAction.UNCHANGED.value
    RESTARTED = UpAction.RESTARTED.value
    REPAIRED = UpAction.REPAIRED.value
    KEPT = "kept"  # the room's lab existed: left as it is, never rebuilt under its participant
    SKIPPED = "skipped"  # never begun: the room stopped first
    ROLLED_BACK = "rolled back"  # in flight when the room stopped: removed again
    FAILED = "failed"
    UNPLACED = "unplaced"  # fits on no engine of a spread room

    @property
    def up(self) -> bool:
        return self not in (self.SKIPPED, self.ROLLED_BACK, self.FAILED, self.UNPLACED)


@dataclass
class Outcome:
    """What became of one seat: created, kept, rolled back, failed or skipped."""

    seat: Seat
    action: SeatAction
    seconds: float = 0.0
    error: str = ""

    @property
    def up(self) -> bool:
        return self.action.up


@dataclass
class RoomReport:
    room: str
    outcomes: list[Outcome] = field(default_factory=list)
    interrupted: bool = False

    @property
    def up(self) -> list[str]:
        return sorted(o.seat.lab for o in self.outcomes if o.up)

    @property
    def not_up(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.up]

    @property
    def error(self) -> Outcome | None:
        return next((o for o in self.outcomes if o.action is SeatAction.FAILED), None)

    def add(self, outcome: Outcome, on_done: OnDone, total: int) -> None:
        """One seat's outcome, told to on_done with the count so far (callers hold a lock)."""
        self.outcomes.append(outcome)
        on_done(outcome, len(self.outcomes), total)

    def skip_the_rest(self, seats: Sequence[Seat], on_done: OnDone) -> None:
        """Seats whose bring-up never began (a stop or Ctrl-C came first) are skipped."""
        had = {o.seat for o in self.outcomes}
        for seat in seats:
            if seat not in had:
                self.add(Outcome(seat, SeatAction.SKIPPED), on_done, len(seats))


def room_labs(engine: EngineAPI, room: str) -> list[str]:
    """The labs of a room, found by label: nothing else is ever counted as the room's."""
    return engine.labs_labelled(WORKSHOP, room)


def check_free(engine: EngineAPI, room: Room) -> set[str]:
    """Refuse, before anything is created, a seat whose lab name another lab already holds.

    A lab of the same room is fine: its name is returned, and `workshop up` keeps it. Someone
    else's lab of that name would otherwise be taken over, or rebuilt under its owner.
    """
    mine = set(room_labs(engine, room.name))
    existing = {s.name: s for s in engine.labs()}
    for seat in room.seats:
        other = existing.get(seat.lab)
        if other is None or seat.lab in mine:
            continue
        raise InputError(
            f"lab {seat.lab!r} already exists (owner {other.owner or '?'}) and is not part of "
            f"workshop {room.name!r}",
            file=room.source,
            line=seat.line,
            key="" if room.source else "--prefix",
            hint="rename the participant, pick another --prefix, or take that lab down first",
        )
    return {seat.lab for seat in room.seats if seat.lab in mine}


def graders_to_come(engine: EngineAPI, room: str, cpus: int) -> int:
    """The room's grader labs that the portal will bring up on engine and are not up yet: one
    per check worker (cpus: of all the room's engines, as the portal counts them)."""
    return max(0, check_workers(cpus) - len(engine.labs_labelled(L.GRADER, room)))


def check_fits(engine: EngineAPI, topo: Topology, room: Room) -> None:
    """Refuse, before anything is created, a room the engine cannot hold at its nodes' limits.

    The capacity rule is placement's: CPUs, and memory at each node's memory limit, minus every
    hoplab node already on the engine and the room's grader labs that the portal will add. Labs
    of this room that exist are kept, so they count as held, not as new.
    """
    held = engine.labs()
    mine = set(room_labs(engine, room.name))
    cpus, memory = engine.machine()
    free = Free(
        "local",
        cpus=cpus,
        memory=memory,
        labs_held=len(mine),
        nodes_held=sum(len(lab.nodes) for lab in held),
        node_memory=memory_bytes(getattr(engine, "mem_limit", "")) or NODE_MEMORY,
        graders_to_come=graders_to_come(engine, room.name, cpus),
    )
    new = sum(seat.lab not in mine for seat in room.seats)
    why = refusal(free, len(topo.nodes), new)
    if why:
        raise InputError(
            f"workshop {room.name!r}: {why}",
            file=room.source,
            key="--participants" if not room.source else "",
            hint="seat fewer participants, take other labs down, or spread the room over "
            "several engines with --engine (each lab whole on one)",
        )


def up(
    engine: EngineAPI,
    topo: Topology,
    room: Room,
    *,
    on_done: OnDone = lambda o, d, t: None,
    say: Say = lambda m: None,
    parallel: int = PARALLEL,
    stop: threading.Event | None = None,
    pool: IPv4Network | None = None,
) -> RoomReport:
    """Bring every seat's lab up, `parallel` at a time; return what became of each.

    The first failure, or `stop` being set (the CLI sets it on Ctrl-C), stops the room: labs not
    started are skipped, labs in flight roll back (the engine's own rollback), and labs already
    up stay up. The report names them; the caller decides the exit code. pool (see check_pool)
    is where the labs' subnets come from; None means the planner's default (HOPLAB_POOL or
    hoplab's own range).
    """
    # A room lab that exists is kept as it is: `up` again (say, for a latecomer) must never
    # rebuild a participant's lab under them because the image or the file changed meanwhile.
    kept = check_free(engine, room)
    engine.ensure_image(resources.hosts_dir(), say)  # once, not once per thread
    stop = stop or threading.Event()
    report = RoomReport(room.name)
    lock = threading.Lock()

    def one(seat: Seat) -> Outcome:
        if stop.is_set():
            return Outcome(seat, SeatAction.SKIPPED)
        if seat.lab in kept:
            return Outcome(seat, SeatAction.KEPT)
        started = time.monotonic()
        try:
            lab = api.up(
                topo,
                seat.lab,
                say=lambda m: say(f"{seat.lab}: {m}"),
                labels=room.labels(seat),
                cancel=stop,  # a stopping room cancels labs in flight: each rolls itself back
                pool=pool,
                engine=engine,
            )
            assert lab.report is not None, "api.up() sets it"
            return Outcome(seat, SeatAction(lab.report.action), time.monotonic() - started)
        except Cancelled:
            return Outcome(seat, SeatAction.ROLLED_BACK, time.monotonic() - started)
        except HoplabError as err:
            stop.set()
            return Outcome(seat, SeatAction.FAILED, time.monotonic() - started, err.message)
        except Exception as err:  # an engine error we did not foresee still stops the room
            stop.set()
            return Outcome(seat, SeatAction.FAILED, time.monotonic() - started, repr(err))

    def record(seat: Seat) -> None:
        outcome = one(seat)
        with lock:
            report.add(outcome, on_done, len(room.seats))

    report.interrupted = each(record, room.seats, parallel, stop)
    report.skip_the_rest(room.seats, on_done)
    report.outcomes.sort(key=lambda o: room.seats.index(o.seat))
    return report


def down(
    engine: EngineAPI,
    room: str,
    *,
    on_done: Callable[[str, int, int], None] = lambda lab, d, t: None,
    parallel: int = PARALLEL,
) -> list[str]:
    """Remove every lab labelled with this room, and its grader labs (which a portal that
    died could not remove), `parallel` at a time; return their names."""
    labs = room_labs(engine, room) + engine.labs_labelled(L.GRADER, room)
    if not labs:
        return []
    lock = threading.Lock()
    done: list[str] = []

    def one(lab: str) -> None:
        engine.down(lab)
        with lock:
            done.append(lab)
            on_done(lab, len(done), len(labs))

    with ThreadPoolExecutor(max_workers=min(parallel, len(labs))) as workers:
        for future in [workers.submit(one, lab) for lab in labs]:
            future.result()
    return labs
