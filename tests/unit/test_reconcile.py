"""Reconcile: what `up` does with a lab that may already exist, decided by pure functions and
checked again end to end on the fake engine (which runs the same decisions)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from hoplab import lifecycle
from hoplab.engine.reconcile import (
    Action,
    Decision,
    apply,
    decide,
    node_labels,
    readiness,
    step_timings,
)
from hoplab.engine.state import LabState, NodeState, json_state, lab_state
from hoplab.model import labels as L
from hoplab.model import plan as plan_module
from hoplab.model.load import parse
from hoplab.model.plan import build_plan
from tests.unit.conftest import TINY
from tests.unit.fake_engine import IMAGE_ID


def running_state(plan, image=IMAGE_ID, state="running") -> LabState:
    """The state a fully made lab of this plan reads back as."""
    nodes = tuple(
        NodeState(n.name, n.container, n.role, state, {}, (), plan.digest, image)
        for n in plan.nodes
    )
    return LabState(plan.lab, nodes, {n.name: str(n.subnet) for n in plan.networks})


def test_decide_covers_every_case(tiny):
    plan = build_plan(tiny, "d1")
    assert decide(LabState("d1"), plan, IMAGE_ID).action == Action.CREATE
    assert decide(running_state(plan), plan, IMAGE_ID).action == Action.UNCHANGED
    stopped = running_state(plan)
    stopped = replace(
        stopped, nodes=(replace(stopped.nodes[0], state="exited"),) + stopped.nodes[1:]
    )
    decision = decide(stopped, plan, IMAGE_ID)
    assert decision.action == Action.RESTART and decision.start == (stopped.nodes[0].name,)
    # Anything else is stale and rebuilt: another image, another plan, a node or network less.
    assert decide(running_state(plan, image="sha256:old"), plan, IMAGE_ID).action == Action.REBUILD
    other = build_plan(parse(TINY.replace("10.64.2.0", "10.64.3.0")), "d1")
    assert decide(running_state(other), plan, IMAGE_ID).action == Action.REBUILD
    fewer = running_state(plan)
    assert decide(replace(fewer, nodes=fewer.nodes[1:]), plan, IMAGE_ID).action == Action.REBUILD
    assert (
        decide(replace(fewer, networks={"a": "10.64.1.0/24"}), plan, IMAGE_ID).action
        == Action.REBUILD
    )
    # Networks left alone by a half-finished teardown are a stale lab, not an empty one.
    assert decide(replace(fewer, nodes=()), plan, IMAGE_ID).action == Action.REBUILD


def test_wiring_is_an_input_a_lab_of_the_other_wiring_is_rebuilt(tiny):
    plan = build_plan(tiny, "d2")
    docker_lab = running_state(plan)
    fabric_lab = replace(docker_lab, labels={L.WIRES: "[]"})
    assert decide(LabState("d2"), plan, IMAGE_ID, wired=True).action == Action.CREATE
    assert decide(docker_lab, plan, IMAGE_ID, wired=False).action == Action.UNCHANGED
    assert decide(fabric_lab, plan, IMAGE_ID, wired=True).action == Action.UNCHANGED
    # the same plan and image, but the other wiring: rebuilt either way round
    assert decide(docker_lab, plan, IMAGE_ID, wired=True).action == Action.REBUILD
    assert decide(fabric_lab, plan, IMAGE_ID, wired=False).action == Action.REBUILD
    # stopped nodes are started in place with either wiring (a fabric lab's are wired again)
    stopped = (replace(docker_lab.nodes[0], state="exited"),) + docker_lab.nodes[1:]
    assert decide(replace(docker_lab, nodes=stopped), plan, IMAGE_ID).action == Action.RESTART
    again = decide(replace(fabric_lab, nodes=stopped), plan, IMAGE_ID, wired=True)
    assert again == Decision(Action.RESTART, (stopped[0].name,))


def test_the_plan_digest_is_computed_once_for_all_node_labels(tiny, monkeypatch):
    """Every node's labels carry the digest; computing it walks the whole plan, so computing it
    per node made bring-up quadratic (at 200 nodes, about 38 s of CPU before this was cached)."""
    plan = build_plan(tiny, "d3")
    calls = []
    real = plan_module.asdict
    monkeypatch.setattr(plan_module, "asdict", lambda obj: calls.append(obj) or real(obj))
    digests = {node_labels(plan, n, {}, "ann", "now")[L.PLAN] for n in plan.nodes}
    assert len(plan.nodes) > 1 and len(calls) == 1
    assert digests == {plan.digest} and len(calls) == 1
    assert replace(plan, lab="d4").digest != plan.digest  # a changed plan gets its own


def test_node_labels_hold_the_state_and_extra_labels_cannot_override_them(tiny):
    plan = build_plan(tiny, "d2")
    node = plan.node("r1")
    hostile = {L.LAB: "someone-else", L.PLAN: "forged", "hoplab.pytest-pid": "42"}
    labels = node_labels(plan, node, hostile, "ann", "2026-01-01")
    assert labels[L.LAB] == "d2" and labels[L.PLAN] == plan.digest
    assert labels[L.NODE] == "r1" and labels[L.ROLE] == "router"
    assert labels["hoplab.pytest-pid"] == "42" and labels[L.OWNER] == "ann"
    assert labels[L.ROUTES] == ";".join(str(r) for r in node.routes)
    # A workshop names its participant as the owner.
    assert node_labels(plan, node, {L.OWNER: "p07"}, "ann", "")[L.OWNER] == "p07"


def test_readiness_reads_the_entrypoint_lines():
    assert readiness(b"") is None
    assert readiness(b"routes: 10.0.0.0/8 via 1.2.3.4\n") is None
    assert readiness(b"x\nhoplab-ready\n") is True
    assert readiness(b"hoplab-error: no route\n") is False


def test_step_timings_give_median_and_slowest():
    steps = [
        dict.fromkeys(("networks", "create", "connect", "start", "ready"), float(i))
        for i in (3, 1, 2)
    ]
    t = step_timings(0.5, 4.0, steps)
    assert t["networks (overlapped)"] == 0.5 and t["nodes"] == 4.0
    assert t["start (median node)"] == 2.0 and t["start (slowest node)"] == 3.0


def test_lab_state_reads_labels_and_json_state_round_trips(fake, tiny):
    lifecycle.up(fake, tiny, "rs1", lambda *a: None, lambda m: None)
    state = fake.state("rs1")
    assert [n.name for n in state.nodes] == ["alice", "bob", "r1"]
    assert state.networks == {"a": "10.64.1.0/24", "b": "10.64.2.0/24"}
    r1 = next(n for n in state.nodes if n.name == "r1")
    assert r1.addresses == {"a": "10.64.1.1", "b": "10.64.2.1"} and r1.role == "router"
    assert state.running and state.owner == "tester"
    data = json.loads(json_state(state))
    assert data["name"] == "rs1" and data["nodes"][2]["addresses"] == r1.addresses
    # Objects of other labs, and strangers, never leak into a lab's state.
    assert lab_state("none", [], []).exists is False


def test_up_again_is_a_no_op(fake, tiny):
    first = lifecycle.up(fake, tiny, "rc1", lambda *a: None, lambda m: None)
    ids = {c["Id"] for c in fake.objects("rc1")[0]}
    again = lifecycle.up(fake, tiny, "rc1", lambda *a: None, lambda m: None)
    assert (first.report.action, again.report.action) == ("created", "unchanged")
    assert {c["Id"] for c in fake.objects("rc1")[0]} == ids
    assert again.plan.digest == first.plan.digest  # planning kept the lab's own subnets


def test_stopped_nodes_are_restarted_in_place(fake, tiny):
    lifecycle.up(fake, tiny, "rc2", lambda *a: None, lambda m: None)
    ids = {c["Id"] for c in fake.objects("rc2")[0]}
    fake.stop("rc2-r1")
    fake.stop("rc2-bob")
    assert not fake.state("rc2").running
    result = lifecycle.up(fake, tiny, "rc2", lambda *a: None, lambda m: None)
    assert result.report.action == "restarted"
    assert fake.state("rc2").running and {c["Id"] for c in fake.objects("rc2")[0]} == ids


def test_a_stale_lab_is_rebuilt_with_nothing_old_left(fake, tiny):
    lifecycle.up(fake, tiny, "rc3", lambda *a: None, lambda m: None)
    old = {c["Id"] for c in fake.objects("rc3")[0]} | {n["Id"] for n in fake.objects("rc3")[1]}
    changed = parse(
        TINY.replace("bob: {networks: [b]}", "bob: {networks: [b]}\n  eve: {networks: [a]}")
    )
    result = lifecycle.up(fake, changed, "rc3", lambda *a: None, lambda m: None)
    assert result.report.action == "created"
    containers, networks = fake.objects("rc3")
    assert not old & ({c["Id"] for c in containers} | {n["Id"] for n in networks})
    assert sorted(n.name for n in fake.state("rc3").nodes) == ["alice", "bob", "eve", "r1"]
    assert fake.state("rc3").running


def test_half_torn_down_lab_is_rebuilt(fake, tiny):
    """Networks without nodes (a teardown killed half-way) must not count as a running lab."""
    lifecycle.up(fake, tiny, "rc4", lambda *a: None, lambda m: None)
    for c in fake.objects("rc4")[0]:
        fake._remove_container(c)
    assert fake.state("rc4").exists and not fake.state("rc4").running
    assert (
        lifecycle.up(fake, tiny, "rc4", lambda *a: None, lambda m: None).report.action == "created"
    )
    assert fake.state("rc4").running and len(fake.objects("rc4")[1]) == 2


def test_apply_does_exactly_what_the_decision_says():
    from hoplab.errors import HoplabError

    calls: list[object] = []

    def run(decision: Decision, fail: bool = False):
        calls.clear()

        def create() -> dict[str, float]:
            calls.append("create")
            if fail:
                raise HoplabError("no")
            return {"nodes": 1.0}

        return apply(
            decision,
            start=lambda names: calls.append(("start", names)),
            remove=lambda: calls.append("remove"),
            create=create,
        )

    assert run(Decision(Action.UNCHANGED)).action == "unchanged" and calls == []
    assert run(Decision(Action.RESTART, ("r1",))).action == "restarted"
    assert calls == [("start", ("r1",))]
    report = run(Decision(Action.CREATE))
    assert (report.action, report.timings, calls) == ("created", {"nodes": 1.0}, ["create"])
    assert run(Decision(Action.REBUILD)).action == "created" and calls == ["remove", "create"]
    with pytest.raises(HoplabError):
        run(Decision(Action.CREATE), fail=True)
    assert calls == ["create", "remove"]  # rolled back


def test_a_kept_lab_is_healed_first_and_says_which_nodes_were_restarted_and_why():
    def run(decision: Decision, sick: dict[str, str]):
        return apply(
            decision,
            start=lambda names: None,
            remove=lambda: None,
            create=dict,
            heal=lambda: sick,
        )

    assert run(Decision(Action.UNCHANGED), {}).action == "unchanged"
    report = run(Decision(Action.UNCHANGED), {"srv": "no exec starts in it"})
    assert (report.action, report.repaired) == ("repaired", {"srv": "no exec starts in it"})
    report = run(Decision(Action.RESTART, ("r1",)), {"srv": "eth0 is down"})
    assert (report.action, report.repaired) == ("restarted", {"srv": "eth0 is down"})


def test_outcomes_are_enums_that_read_as_the_words_the_json_and_cli_always_said():
    from hoplab.engine.state import UpAction
    from hoplab.workshop.room import SeatAction

    assert json.dumps([UpAction.CREATED, SeatAction.ROLLED_BACK]) == '["created", "rolled back"]'
    assert f"{SeatAction.KEPT}: p01" == "kept: p01" and str(Action.REBUILD) == "rebuild"
    for done in UpAction:  # what `up` did with a lab is also what became of a room's seat
        assert SeatAction(done).up
    assert not any(SeatAction(a).up for a in ("skipped", "rolled back", "failed", "unplaced"))
