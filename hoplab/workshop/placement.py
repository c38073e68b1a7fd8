"""Where each lab of a room goes: whole labs on engines, by free capacity. Pure: no Docker.

A lab never spans engines (all its traffic stays inside it), so what spreads is the number of
labs. The capacity rule, per engine, in nodes:

    budget = nodes capacity if given, else min(NODES_PER_CPU * CPUs, memory // node memory limit)
    free labs = min((budget - hoplab nodes already on it - grader labs to come * nodes per lab)
                    // nodes per lab,
                    labs capacity - this room's labs already on it, if a labs capacity is given)

A given nodes=N replaces the estimate: the operator knows the machine. NODES_PER_CPU comes from the
room benchmark (a 2-core engine holds about 20 default labs of 7
nodes, so 70 nodes per CPU). Memory is budgeted at each node's memory limit (NODE_MEMORY, the
engine's default), not at its idle cost: a participant is root in their nodes and can fill every
one to its limit, so a room sized by the rule cannot overcommit the host. The machine's budget
counts every hoplab node on the engine, whatever lab or room it belongs to; `labs=N` is the share
of this room the operator gives the engine. The portal keeps a warm grader lab per check worker
on each engine that holds the room's labs (workshop/graderlab.py), at the same limits: those not
up yet are reserved, so a serving room cannot overcommit either. A room lab that already exists
stays where it is.
New labs go one at a time to the engine with the most free labs (the first given wins a tie), so
a room spreads evenly and a big engine takes the larger share.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hoplab.errors import InputError

NODES_PER_CPU = 70
MAX_CHECK_WORKERS = 8  # each worker keeps a grader lab warm: 7 nodes at their memory limit
NODE_MEMORY = 128 * 2**20  # hoplab.engine.bringup.MEM_LIMIT ("128m"; a test keeps them equal)
ENGINES_HINT = (
    "one engine per line: URL-or-context, then labs=N and nodes=N if wanted, e.g. "
    "'ssh://lab@host2 labs=20'; '#' starts a comment"
)


@dataclass(frozen=True)
class EngineLine:
    """One engine of the room as the user gave it, with its optional capacities."""

    name: str
    labs: int | None = None
    nodes: int | None = None
    line: int = 0


@dataclass(frozen=True)
class Free:
    """An engine's inputs to the rule: given capacities, machine size, and what it holds."""

    name: str
    cpus: int
    memory: int
    labs_held: int = 0  # this room's labs on the engine
    nodes_held: int = 0  # every hoplab node on the engine
    labs_cap: int | None = None
    nodes_cap: int | None = None
    node_memory: int = NODE_MEMORY  # bytes: each node's memory limit
    graders_to_come: int = 0  # the room's grader labs the engine must keep room for


def check_workers(cpus: int) -> int:
    """Check runs at once for the whole room: one per CPU of the room's engines, 1 to 8.

    A grading is work on the engine's host (its execs, the graded program, hoplab's peers and
    captures), so a worker beyond the CPUs only slows every grading in flight and a queue does
    not drain faster. Nor does a larger room call for more: it queues longer, but the machine's
    CPUs bound how fast it drains. Each worker keeps a warm grader lab on each engine that holds
    the room's labs, hence the cap, and the reservation in the capacity rule (Free). On the
    project's 2 cores this is 2.
    """
    return max(1, min(MAX_CHECK_WORKERS, cpus))


@dataclass(frozen=True)
class Placement:
    """lab -> engine for every placed seat; unplaced labs with the reason they did not fit."""

    where: dict[str, str]
    unplaced: tuple[str, ...] = ()
    why: str = ""

    def on(self, engine: str) -> list[str]:
        return [lab for lab, e in self.where.items() if e == engine]


def parse_engines(text: str, source: str = "") -> tuple[EngineLine, ...]:
    """The engines file: bad lines are refused with file, line and the key at fault."""
    out: list[EngineLine] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        name, caps = words[0], {}
        for word in words[1:]:
            key, eq, value = word.partition("=")
            if not eq or key not in ("labs", "nodes") or key in caps:
                raise InputError(
                    f"engine {name!r}: {word!r} is not labs=N or nodes=N (each at most once)",
                    file=source,
                    line=number,
                    key=key,
                    hint=ENGINES_HINT,
                )
            if not value.isdigit() or int(value) < 1:
                raise InputError(
                    f"engine {name!r}: {key}={value!r} must be a whole number of 1 or more",
                    file=source,
                    line=number,
                    key=key,
                    hint="write e.g. labs=10; leave it out to let CPUs and memory decide",
                )
            caps[key] = int(value)
        if name in seen:
            raise InputError(
                f"engine {name!r} is listed twice (first on line {seen[name]})",
                file=source,
                line=number,
                hint="list every engine once",
            )
        seen[name] = number
        out.append(EngineLine(name, caps.get("labs"), caps.get("nodes"), number))
    if not out:
        raise InputError("the engines file lists no engine", file=source, hint=ENGINES_HINT)
    return tuple(out)


def read_engines(path: str | Path) -> tuple[EngineLine, ...]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(
            f"cannot read the engines file: {getattr(err, 'strerror', None) or err}",
            file=str(path),
            hint=ENGINES_HINT,
        ) from None
    return parse_engines(text, str(path))


def free_labs(engine: Free, nodes_per_lab: int) -> int:
    """How many more labs of this size the engine takes under the capacity rule (never < 0)."""
    budget = min(NODES_PER_CPU * max(1, engine.cpus), engine.memory // engine.node_memory)
    if engine.nodes_cap is not None:
        budget = engine.nodes_cap
    reserved = engine.graders_to_come * nodes_per_lab
    labs = (budget - engine.nodes_held - reserved) // max(1, nodes_per_lab)
    if engine.labs_cap is not None:
        labs = min(labs, engine.labs_cap - engine.labs_held)
    return max(0, labs)


def memory_bytes(limit: str) -> int:
    """Docker's memory notation ("128m", "1g", "65536") in bytes; 0 when it is not one."""
    units = {"b": 1, "k": 2**10, "m": 2**20, "g": 2**30}
    text = limit.strip().lower()
    scale = units.get(text[-1:], 0) if text[-1:].isalpha() else 1
    number = text[:-1] if text[-1:].isalpha() else text
    return int(number) * scale if number.isdigit() else 0


def refusal(engine: Free, nodes_per_lab: int, new_labs: int) -> str:
    """Why new_labs more labs do not fit the engine under the rule; '' when they fit."""
    fits = free_labs(engine, nodes_per_lab)
    if new_labs <= fits:
        return ""
    by_cpu = NODES_PER_CPU * max(1, engine.cpus)
    by_memory = engine.memory // engine.node_memory
    return (
        f"{new_labs} new labs of {nodes_per_lab} nodes do not fit engine {engine.name}: it takes "
        f"{fits} more (its budget is {min(by_cpu, by_memory)} nodes: {engine.cpus} CPUs at "
        f"{NODES_PER_CPU} a CPU, {engine.memory >> 20} MiB at {engine.node_memory >> 20} MiB a "
        f"node's memory limit; {engine.nodes_held} hoplab nodes run there already"
        + (
            f", and {engine.graders_to_come} grader labs are kept for the portal's checks"
            if engine.graders_to_come
            else ""
        )
        + ")"
    )


def place(
    labs: list[str],
    engines: list[Free],
    nodes_per_lab: int,
    kept: dict[str, str] | None = None,
) -> Placement:
    """Place every lab: kept ones (lab -> engine they are on) stay; new ones fill the freest.

    Kept labs are already counted in their engine's held labs and nodes. Labs that fit nowhere
    are returned in order with the reason, so the caller can say how many and why.
    """
    kept = kept or {}
    where = {lab: kept[lab] for lab in labs if lab in kept}
    room = {e.name: free_labs(e, nodes_per_lab) for e in engines}
    unplaced = []
    for lab in labs:
        if lab in where:
            continue
        best = max(room, key=lambda n: room[n], default=None)  # max keeps the first on a tie
        if best is None or room[best] <= 0:
            unplaced.append(lab)
            continue
        where[lab] = best
        room[best] -= 1
    why = ""
    if unplaced:
        if not engines:
            why = "no engine of the room could be reached"
        else:
            sizes = ", ".join(f"{e.name}: {free_labs(e, nodes_per_lab)} free" for e in engines)
            why = (
                f"the reachable engines hold no more labs of {nodes_per_lab} nodes ({sizes}); "
                "add an engine, or raise its labs=/nodes= capacity"
            )
    return Placement(where, tuple(unplaced), why)
