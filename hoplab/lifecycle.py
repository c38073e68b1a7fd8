"""The data flow in one place: file -> topology -> plan -> engine, shared by CLI and tests."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

from hoplab.engine.interface import EngineAPI
from hoplab.engine.state import LabState, Progress, UpAction, UpReport
from hoplab.errors import InputError, SubnetTaken
from hoplab.model.images import with_image_ids
from hoplab.model.impair import Impair, needs_netem_message, unsupported
from hoplab.model.load import check_lab_name, load
from hoplab.model.plan import DEFAULT_POOL, Plan, build_plan, parse_pool
from hoplab.model.plan6 import build_plan6
from hoplab.model.topology import Topology
from hoplab.resources import hosts_dir, topology_file

PLAN_ATTEMPTS = 8


def subnet_pool() -> IPv4Network:
    """Where remapped subnets come from: HOPLAB_POOL (so a host can pick its own range), else
    the default. Callers with a pool of their own (a room, the API's pool=) pass it to up()."""
    env = os.environ.get("HOPLAB_POOL")
    return parse_pool(env, "HOPLAB_POOL") if env else DEFAULT_POOL


def lab_name(path: str | Path | None, name: str | None) -> str:
    """--name wins; else the file's x-hoplab.name; else 'hoplab'. Bad names are input errors."""
    if name:
        return check_lab_name(name, key="--name")
    p = topology_file(path)
    if p.exists():
        return load(p).name
    return "hoplab"


def make_plan(
    engine: EngineAPI, topo: Topology, name: str | None, pool: IPv4Network | None = None
) -> tuple[Plan, LabState]:
    """The plan, and the lab's state as read for it (so `up` need not read it again).
    pool: where taken subnets move to; None means subnet_pool()."""
    lab = check_lab_name(name, key="--name") if name else topo.name
    state, taken = engine.survey(lab)
    current, current6 = {}, {}
    for net, subnet in state.networks.items():
        with contextlib.suppress(ValueError):
            current[net] = IPv4Network(subnet)
    for net, subnet in state.networks6.items():
        with contextlib.suppress(ValueError):
            current6[net] = IPv6Network(subnet)
    plan = build_plan(topo, lab, list(taken.v4), pool or subnet_pool(), current)
    if any(n.subnet6 is not None for n in topo.networks):  # dual-stack: the IPv6 half beside
        six = build_plan6(topo, plan, list(taken.v6), current6)
        plan = dataclasses.replace(plan, six=six)
    return plan, state


@dataclass
class UpResult:
    plan: Plan
    report: UpReport


def up(
    engine: EngineAPI,
    topo: Topology,
    name: str | None,
    progress: Progress,
    say: Callable[[str], None],
    labels: dict[str, str] | None = None,
    cancel: threading.Event | None = None,
    pool: IPv4Network | None = None,
    allow_unsupported: bool = False,
    heal: bool = True,
) -> UpResult:
    """The topology is loaded (and so validated) by the caller before the engine is reached.

    Impairments the file declares are in place before this returns (on every up, so the file
    wins over changes made since). Delay or jitter on a kernel without netem refuse the lab
    before anything is created, unless allow_unsupported (then they are dropped with a warning).
    A running lab that matches is kept, its broken nodes restarted unless heal is False.

    Labs brought up at the same moment can plan the same free subnet; the loser rolls back
    (the engine leaves nothing), waits a random moment and plans again with the winner in view.
    """
    image = engine.ensure_image(hosts_dir(), say)
    # Own images are found or built before anything is created: a bad one creates nothing.
    topo = with_image_ids(topo, engine.ensure_app_images(topo, image, say))
    impairs, netem = declared_impairments(engine, topo, image, say, allow_unsupported)
    for attempt in range(PLAN_ATTEMPTS):
        plan, state = make_plan(engine, topo, name, pool)
        try:
            report = engine.up(plan, image, progress, labels, state, cancel, heal)
            if impairs:
                try:
                    engine.apply_impairments(engine.state(plan.lab), impairs, netem)
                except BaseException:
                    if report.action is UpAction.CREATED:
                        engine.down(plan.lab, progress)  # a lab up without its links is wrong
                    raise
            return UpResult(plan, report)
        except SubnetTaken:
            if attempt == PLAN_ATTEMPTS - 1:
                raise
            say(f"a subnet was taken meanwhile; planning lab {plan.lab} again")
            time.sleep(random.uniform(0.05, 0.5) * (attempt + 1))
    raise AssertionError("unreachable")


def declared_impairments(
    engine: EngineAPI, topo: Topology, image: str, say: Callable[[str], None], allow: bool
) -> tuple[list[tuple[str, str, Impair | None]], bool]:
    """The file's impairments and whether netem carries them; asked before anything is made.

    netem is probed only when the file impairs something (a throwaway container, ~0.5 s).
    Delay or jitter without netem is an input error naming the key (exit 2), or with `allow` a
    warning, and the rest of that impairment (loss, rate) still holds through the fallbacks."""
    declared = topo.impairments()
    if not declared:
        return [], False
    missing = engine.netem_missing(image)
    if not missing:
        return list(declared), True
    out: list[tuple[str, str, Impair | None]] = []
    for node, network, imp in declared:
        lacking = unsupported(imp)
        if lacking and not allow:
            raise InputError(
                needs_netem_message(lacking, missing),
                file=topo.source,
                line=imp.line,
                key=f"{imp.key}.{lacking[0]}",
                hint="remove delay/jitter, load sch_netem on the engine's host, or pass "
                "--allow-unsupported to run without them",
            )
        if lacking:
            say(f"warning: {imp.key}: {' and '.join(lacking)} dropped for {node} (no netem)")
            imp = Impair(loss=imp.loss, rate_bit=imp.rate_bit, key=imp.key, line=imp.line)
        out.append((node, network, None if imp.empty else imp))
    return out, False
