"""Exercises' needs matched against topologies, without Docker: the default lab casts the nodes
its lessons were written for, another topology casts its own or names the need it lacks."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest

from hoplab import exercises, grading, lifecycle
from hoplab.checks import Status
from hoplab.engine.state import LabState
from hoplab.exercises.runner import cast as cast_exercise
from hoplab.exercises.runner import run_one
from hoplab.grading import multihomed_bind
from hoplab.grading.base import cast as cast_assignment
from hoplab.model.load import parse
from hoplab.runtime.lab import Lab
from hoplab.runtime.needs import (
    Apart,
    Host,
    Ipv6Path,
    Missing,
    SameLan,
    SmallerMtu,
    describe,
    match,
    route_path,
)
from tests.unit.fake_engine import FakeEngine

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = (ROOT / "compose.yaml").read_text()
CHAIN = (ROOT / "tests" / "topologies" / "chain.yaml").read_text()

# What the chain topology (three routers, no multi-homed host, no smaller MTU) lacks, per
# exercise; every other exercise fits it.
CHAIN_LACKS = {
    "socket-is-address-protocol-port": "multi-homed",
    "bind-scope": "multi-homed",
    "mtu-and-fragmentation": "smaller MTU",
    "no-fragmenting-routers": "smaller MTU",
}


def state_of(text: str, name: str, ipv6: bool = True) -> LabState:
    """The lab the fake engine brings up from a Compose text, with what the fake leaves out put
    back from the topology: each network's own MTU and, when asked, IPv6 addresses."""
    topo = parse(text, f"{name}.yaml")
    fake = FakeEngine()
    lifecycle.up(fake, topo, name, lambda *a: None, lambda m: None)
    state = fake.state(name)
    six = {n.name for n in topo.networks if n.subnet6} if ipv6 else set()
    nodes = tuple(
        dataclasses.replace(
            n, addresses6={net: f"fd00::{i}" for i, net in enumerate(n.addresses) if net in six}
        )
        for n in state.nodes
    )
    mtus = {n.name: n.mtu for n in topo.networks if n.mtu}
    return dataclasses.replace(state, nodes=nodes, mtus=mtus)


@pytest.fixture(scope="module")
def default() -> LabState:
    return state_of(COMPOSE, "dflt")


@pytest.fixture(scope="module")
def chain() -> LabState:
    return state_of(CHAIN, "chain")


@pytest.mark.parametrize("ex", exercises.catalogue(), ids=lambda e: e.name)
def test_default_lab_casts_the_lessons_own_nodes(ex, default):
    cast = match(ex.needs, default)
    assert not isinstance(cast, Missing), cast
    preferred = {n.role: n.prefer for n in ex.needs if isinstance(n, Host)}
    assert cast == preferred


@pytest.mark.parametrize("ex", exercises.catalogue(), ids=lambda e: e.name)
def test_chain_fits_or_names_what_it_lacks(ex, chain):
    cast = match(ex.needs, chain)
    if ex.name in CHAIN_LACKS:
        assert isinstance(cast, Missing), cast
        assert CHAIN_LACKS[ex.name] in cast.need
        assert cast.observed and cast.hint
    else:
        assert not isinstance(cast, Missing), cast
        assert set(cast.values()) <= {"ann", "ben", "cy", "web"}


def test_the_cast_meets_each_need(chain):
    """Candidates are tried in name order when no preferred name exists: the first cast that
    meets every need wins (ann and ben share west; cy is three routers from both)."""
    cast = match(exercises.select(["nat"])[0].needs, chain)
    assert cast == {"client": "ann", "neighbour": "ben", "server": "cy"}
    cast = match(exercises.select(["errors-by-layer"])[0].needs, chain)
    assert cast == {"client": "ann", "server": "ben", "far": "cy"}
    cast = match(exercises.select(["one-port-many-clients"])[0].needs, chain)
    assert cast == {"server": "ann", "client": "cy", "other": "web", "neighbour": "ben"}


def test_a_lab_without_ipv6_lacks_ipv6_and_says_dual_stack():
    v4 = state_of(COMPOSE, "v4", ipv6=False)
    for name in ("dual-stack-bind", "hop-limit", "neighbour-discovery"):
        found = match(exercises.select([name])[0].needs, v4)
        assert isinstance(found, Missing) and "IPv6" in found.need, found
        assert "dual-stack" in found.hint
        assert found.observed == "nodes with IPv6: none; IPv6 networks: none"


def test_without_its_small_mtu_the_default_lab_lacks_one(default):
    flat = dataclasses.replace(default, mtus={})
    found = match(exercises.select(["mtu-and-fragmentation"])[0].needs, flat)
    assert isinstance(found, Missing)
    assert found.need.startswith("a smaller MTU") and "every network 1500" in found.observed


def test_the_packet_must_fit_before_and_not_after(default):
    needs = (Host("a", "alice"), Host("b", "dave"))
    assert isinstance(match((*needs, SmallerMtu("a", "b", packet=1428)), default), dict)
    assert isinstance(match((*needs, SmallerMtu("a", "b", packet=1200)), default), Missing)
    assert isinstance(match((*needs, SmallerMtu("a", "b", packet=1600)), default), Missing)


def test_the_first_need_no_cast_meets_is_named(chain):
    needs = (Host("a"), Host("b"), Apart("a", "b", routers=3), Apart("a", "b", routers=4))
    found = match(needs, chain)
    assert isinstance(found, Missing)
    assert found.need == "a and b 4 or more routers apart"
    assert "3 router(s) apart" in found.observed


def test_routes_are_followed_from_the_labels(default, chain):
    srv = next(n for n in default.nodes if n.name == "srv").addresses["lan2"]
    assert [r for r, _ in route_path(default, "alice", srv)] == ["r1", "r2"]
    cy = next(n for n in chain.nodes if n.name == "cy").addresses["east"]
    assert [r for r, _ in route_path(chain, "ann", cy)] == ["gw1", "gw2", "gw3"]


def test_the_cast_does_not_depend_on_the_order_nodes_are_listed(chain):
    flipped = dataclasses.replace(chain, nodes=tuple(reversed(chain.nodes)))
    for ex in exercises.catalogue():
        assert match(ex.needs, chain) == match(ex.needs, flipped), ex.name


def test_a_role_no_host_declares_is_an_error_in_the_exercise(default):
    with pytest.raises(ValueError, match="server"):
        match((Host("client"), SameLan("client", "server")), default)


def test_needs_read_as_words():
    assert describe((Host("s", homes=2),)) == "a multi-homed host as s (on 2 or more networks)"
    assert describe((Host("c"), Host("s"), Ipv6Path("c", "s"))) == (
        "IPv6 on c, s and the routers between"
    )
    assert describe((Host("s"),)) == "a host as s"


# Each assignment's module (named like it) states its NEEDS.
ASSIGNMENT_NEEDS = {
    a.name: importlib.import_module(f"hoplab.grading.{a.name.replace('-', '_')}").NEEDS
    for a in grading.catalogue()
}


@pytest.mark.parametrize("name", sorted(ASSIGNMENT_NEEDS))
def test_assignments_cast_the_default_labs_nodes_and_fit_the_chain_or_not(name, default, chain):
    needs = ASSIGNMENT_NEEDS[name]
    preferred = {n.role: n.prefer for n in needs if isinstance(n, Host)}
    assert match(needs, default) == preferred
    on_chain = match(needs, chain)
    if name == "multihomed-bind":
        assert isinstance(on_chain, Missing) and "multi-homed" in on_chain.need
    else:
        assert not isinstance(on_chain, Missing), on_chain


def test_a_lab_that_lacks_a_need_gets_env_never_fail(chain):
    """What the runner and the grader make of a Missing: ENV checks that name the need, with
    the topology's side as observed; an exercise is not run at all."""
    lab = Lab(FakeEngine(), chain)
    (bind_scope,) = exercises.select(["bind-scope"])
    check = cast_exercise(lab, bind_scope)
    assert check.status is Status.ENV and check.name.startswith("needs a multi-homed host")
    assert check.observed.startswith("hosts ann, ben, cy, web")
    result = run_one(lab, bind_scope, None)
    assert result.status is Status.ENV and result.checks == (check,)
    checks = cast_assignment(lab, multihomed_bind.NEEDS, multihomed_bind.CHECKS)
    assert [c.name for c in checks] == list(multihomed_bind.CHECKS)
    assert {c.status for c in checks} == {Status.ENV}
    assert all("multi-homed" in c.expected for c in checks)
    (ttl,) = exercises.select(["ttl-and-traceroute"])
    roles = cast_exercise(lab, ttl)
    assert {r: n.name for r, n in roles.items()} == {"client": "ann", "server": "cy"}
