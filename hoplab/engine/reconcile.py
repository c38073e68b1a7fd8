"""Decisions of bring-up: what to do with a lab that may already run, and how a node's labels,
readiness and step timings are read, as pure functions; and `apply`, which carries a decision
out through callables. No Docker here: the real engine passes its Docker calls to `apply`, the
unit tests' fake passes in-memory ones, so both run the same reconcile and rollback wiring.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hoplab.engine.parallel import or_roll_back
from hoplab.engine.state import LabState, UpAction, UpReport
from hoplab.model import labels as L
from hoplab.model.plan import NodePlan, Plan

READY, FAILED = b"hoplab-ready", b"hoplab-error"
STEPS = ("networks", "create", "connect", "start", "ready")


class Action(StrEnum):
    """What `up` must do with a lab that may already run."""

    UNCHANGED = "unchanged"  # leave it (heal it if a node was broken)
    RESTART = "restart"  # start its stopped nodes
    CREATE = "create"  # there is none: create it
    REBUILD = "rebuild"  # it differs from the plan: remove it, then create it


@dataclass(frozen=True)
class Decision:
    """What `up` must do: leave the lab, start some of its nodes, create it, or rebuild it."""

    action: Action
    start: tuple[str, ...] = ()  # node names to start (RESTART only)


def matches(current: LabState, plan: Plan, image: str) -> bool:
    """Same nodes, networks, plan and image: anything else is rebuilt rather than patched."""
    return (
        {n.name for n in current.nodes} == {n.name for n in plan.nodes}
        and set(current.networks) == {n.name for n in plan.networks}
        and all(n.plan == plan.digest and n.image == image for n in current.nodes)
    )


def decide(current: LabState, plan: Plan, image: str, wired: bool = False) -> Decision:
    """Reconcile: a matching lab is kept (its stopped nodes started), any other is rebuilt.

    Patching a lab in place (one node changed) would need a diff of every label and interface;
    rebuilding costs about a second and cannot leave a half-old lab.
    `wired`: this engine wires labs itself (fabric); a lab of the other wiring is rebuilt.
    """
    if not current.exists:
        return Decision(Action.CREATE)
    if not matches(current, plan, image) or fabric_wired(current) != wired:
        return Decision(Action.REBUILD)
    stopped = tuple(n.name for n in current.nodes if n.state != "running")
    return Decision(Action.RESTART, stopped) if stopped else Decision(Action.UNCHANGED)


def fabric_wired(current: LabState) -> bool:
    """Whether hoplab wired this lab itself: its nodes carry their links in a label."""
    return L.WIRES in current.labels


def apply(
    decision: Decision,
    *,
    start: Callable[[tuple[str, ...]], object],
    remove: Callable[[], object],
    create: Callable[[], dict[str, float]],
    heal: Callable[[], dict[str, str]] = dict,
) -> UpReport:
    """Carry a decision out: start the stopped nodes, or (after removing a stale lab) create it.

    A lab that is kept is first healed: `heal` restarts the running nodes that no longer are as
    their plan made them and says which, and why. A create that fails, is cancelled or is
    interrupted is rolled back with `remove`, so the lab is whole or absent; `create` must have
    waited for its own calls in flight before it raises.
    """
    if decision.action in (Action.UNCHANGED, Action.RESTART):
        started = time.monotonic()
        repaired = heal()
        if decision.action is Action.RESTART:
            start(decision.start)
        elif not repaired:
            return UpReport(UpAction.UNCHANGED)
        action = UpAction.RESTARTED if decision.action is Action.RESTART else UpAction.REPAIRED
        return UpReport(action, {"start": time.monotonic() - started}, repaired)
    if decision.action is Action.REBUILD:
        remove()
    return UpReport(UpAction.CREATED, or_roll_back(create, remove))


def node_labels(
    plan: Plan, node: NodePlan, extra: Mapping[str, str], owner: str, created: str
) -> dict[str, str]:
    """Every label a node carries: all the state needed to rebuild the lab from the engine.

    Extra labels (a test run's pid, a workshop) come first so hoplab's own keys always win; a
    workshop names its participant in the owner label, else the user who ran the command does.
    """
    return dict(extra) | {
        L.LAB: plan.lab,
        L.NODE: node.name,
        L.ROLE: str(node.role),
        L.PLAN: plan.digest,
        L.ROUTES: route_label(node),
        L.ROUTES6: plan.six.route_text(node.name) if plan.six else "",
        L.SOURCE: plan.source,
        L.OWNER: extra.get(L.OWNER) or owner,
        L.CREATED: created,
    }


def route_label(node: NodePlan) -> str:
    return ";".join(str(r) for r in node.routes)


def readiness(seen: bytes) -> bool | None:
    """From a node's log so far: True ready, False its entrypoint failed, None not yet."""
    if READY in seen:
        return True
    if FAILED in seen:
        return False
    return None


def step_timings(
    networks: float, total: float, steps: Sequence[Mapping[str, float]]
) -> dict[str, Any]:
    """Median and slowest node per bring-up step, for `up --profile` and the benchmark."""
    timings = {"networks (overlapped)": networks, "nodes": total}
    for step in STEPS:
        values = sorted(s[step] for s in steps)
        if values:
            timings[f"{step} (median node)"] = values[len(values) // 2]
            timings[f"{step} (slowest node)"] = values[-1]
    return timings
