"""Fabric wiring (issue 24): hoplab wires each lab itself, below Docker's networking.

Every test here brings its labs up with an Engine set to `fabric`, whatever HOPLAB_WIRING says,
and looks at the kernel from the host (nsenter into the fabric's namespace) as well as from the
nodes: a lab of real containers, real veths and real packets.

- The default lab comes up with no Docker network and the file's own subnets, and the TTL and
  MAC exercises pass across its routers.
- A node's interfaces lead only to bridges in the fabric's namespace, which has no address and
  does not forward; a root node that tries the egress attack reaches nothing in a namespace this
  test made to stand in for the outside (a control proves that namespace's sniffer sees frames).
- Two labs with the same subnets, side by side, cannot reach each other.
- After `down` nothing is left: no container, no fabric namespace, no hoplab link on the host.
- A node a root participant broke is restarted and wired again by `up`.
- An engine that refuses the helper: `up` exits 2 and creates nothing.
- Ctrl-C at each phase of `up`, wiring included, leaves the whole lab or nothing.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hoplab import lifecycle
from hoplab.checks import Status
from hoplab.engine import fabric
from hoplab.engine.client import connect
from hoplab.engine.engine import Engine
from hoplab.errors import InputError
from hoplab.exercises.mac_per_hop import EXERCISE as MAC_PER_HOP
from hoplab.exercises.runner import run_one
from hoplab.exercises.ttl_and_traceroute import EXERCISE as TTL
from hoplab.model import labels as L
from hoplab.model.load import load
from hoplab.runtime.lab import Lab
from tests.conftest import COMPOSE, bring_up, unique_lab_name
from tests.test_egress import (
    TINY,
    fabric_pid,
    hoplab_links,
    host_links,
    in_fabric,
    links_lead_only_into_the_fabric,
    reaches_nothing_outside,
)
from tests.test_faults import finish, hoplab, interrupt_after, interrupt_when

pytestmark = pytest.mark.docker

FABRIC_ENV = {fabric.WIRING_ENV: fabric.FABRIC}


@pytest.fixture(scope="module")
def wired() -> Engine:
    return Engine(connect(), wiring=fabric.FABRIC)


@pytest.fixture(scope="module")
def default_lab(wired: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    name = unique_lab_name("fab")
    try:
        lab = bring_up(wired, name)
        lab.artifacts = tmp_path_factory.mktemp("fabric")
        yield lab
    finally:
        wired.down(name)


def objects(engine: Engine, lab: str) -> tuple[list[dict], list[dict]]:
    f = L.lab_filter(lab)
    return engine.api.containers(all=True, filters=f), engine.api.networks(filters=f)


# --- the lab works, as users know it ---------------------------------------------------------


def test_the_default_lab_is_wired_with_no_docker_network_and_the_files_own_subnets(
    wired, default_lab
):
    containers, networks = objects(wired, default_lab.name)
    assert networks == [], "a fabric lab makes no Docker network"
    roles = [c["Labels"].get(L.FABRIC, "node") for c in containers]
    assert roles.count(fabric.FABRIC) == 1 and fabric.HELPER_ROLE not in roles, roles
    for c in containers:
        mode = wired.api.inspect_container(c["Id"])["HostConfig"]["NetworkMode"]
        assert mode == "none", f"{c['Names']}: {mode}"
    state = default_lab.state
    assert state.networks == {
        "core": "10.77.0.0/29",
        "lan1": "10.77.1.0/24",
        "lan2": "10.77.2.0/24",
        "lan3": "10.77.3.0/24",
    }, "the file's subnets, never remapped"
    assert state.mtus == {"lan3": 1280}
    srv = default_lab.node("srv")
    assert srv.iface("lan2").name == "eth0" and srv.iface("lan3").name == "eth1", "file order"
    mtu = srv.run(["cat", f"/sys/class/net/{srv.iface('lan3').name}/mtu"]).out.strip()
    assert mtu == "1280"
    out = srv.run(["ip", "-j", "link", "show", srv.iface("lan2").name]).out
    assert json.loads(out)[0]["address"] == "02:42:0a:4d:02:64", "MAC from 10.77.2.100"


def test_ttl_drops_per_router_and_macs_change_per_hop(default_lab):
    for exercise in (TTL, MAC_PER_HOP):
        result = run_one(default_lab, exercise, default_lab.artifacts)
        assert result.status is Status.PASS, result.checks


def test_ipv6_crosses_the_routers_too(default_lab):
    alice, dave = default_lab.node("alice"), default_lab.node("dave")
    six = default_lab.state_node("dave").addresses6["lan3"]
    res = alice.run(["ping", "-6", "-n", "-c1", "-W5", six], timeout=30)
    assert res.ok, res
    assert "ttl=62" in res.out or "hlim=62" in res.out, res.out  # two routers: 64 - 2
    assert dave.run(["ip", "-6", "route"]).ok


# --- isolation by construction ---------------------------------------------------------------


def test_a_nodes_links_lead_only_into_the_fabric_which_has_no_address_and_no_forwarding(
    wired, default_lab
):
    links_lead_only_into_the_fabric(wired, default_lab)


def test_a_root_node_reaches_nothing_outside_the_lab(wired, default_lab):
    reaches_nothing_outside(wired, default_lab, "alice", "lan1")


def test_two_labs_with_the_same_subnets_cannot_reach_each_other(wired, tmp_path):
    """Lab B has eve at 10.64.1.50 on the same subnet as lab A's alice. A's alice asks for it
    (ARP and ping): no answer, and eve sees nothing at all."""
    a_file, b_file = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a_file.write_text(TINY)
    b_file.write_text(
        TINY.replace("  bob:", "  eve: {networks: {a: {ipv4_address: 10.64.1.50}}}\n  bob:")
    )
    a, b = unique_lab_name("faba"), unique_lab_name("fabb")
    try:
        lab_a, lab_b = bring_up(wired, a, a_file), bring_up(wired, b, b_file)
        assert lab_a.subnet("a") == lab_b.subnet("a") == "10.64.1.0/24", "no remap"
        assert lab_a.address("alice") == lab_b.address("alice"), "the same addresses in both"
        eve = lab_b.node("eve")
        # Every ARP or ICMP frame eve's interface sees for 8 s (lab B is idle meanwhile).
        sniff = f"timeout 8 tcpdump -n -l -i {eve.iface('a').name} --immediate-mode arp or icmp"
        with ThreadPoolExecutor(1) as pool:
            captured = pool.submit(eve.run, ["sh", "-c", sniff + " 2>/dev/null"], timeout=30)
            knock = lab_a.node("alice").run(
                ["sh", "-c", "sleep 2; ping -n -c3 -W1 10.64.1.50; ip neigh show 10.64.1.50"],
                timeout=30,
            )
            seen = captured.result()
        assert " 0 received" in knock.out, knock
        assert "lladdr" not in knock.out, f"lab A learnt a MAC for lab B's eve: {knock.out}"
        assert seen.out.strip() == "", f"eve saw lab A's frames: {seen.out}"
        # The same knock inside lab B reaches eve: the probe itself works.
        control = lab_b.node("alice").run(["ping", "-n", "-c1", "-W3", "10.64.1.50"], timeout=30)
        assert control.ok, control
    finally:
        wired.down(a)
        wired.down(b)


# --- nothing left ----------------------------------------------------------------------------


def test_down_leaves_no_container_no_namespace_and_no_host_link(wired):
    name = unique_lab_name("fabd")
    before = hoplab_links(host_links())
    try:
        lab = bring_up(wired, name)
        pid = fabric_pid(wired, name)
        during = hoplab_links(host_links())
        assert during == before, f"the lab put links on the host: {during - before}"
        inside = {link["ifname"] for link in json.loads(in_fabric(pid, "ip", "-j", "link"))}
        assert hoplab_links(inside), "the fabric's namespace holds the lab's links"
        assert lab.state.running
    finally:
        wired.down(name)
    assert objects(wired, name) == ([], [])
    assert not Path(f"/proc/{pid}").exists(), "the fabric's process (and namespace) is gone"
    assert hoplab_links(host_links()) == before


def test_a_crash_during_wiring_leaves_nothing_on_the_host_and_down_removes_the_rest(wired):
    """`up` killed outright (no rollback can run) while the helper wires: what it made is all
    labelled containers, nothing on the host; `down` takes it all, the helper included."""
    name = unique_lab_name("fabk")
    before = hoplab_links(host_links())
    proc = hoplab("up", "--name", name, env=FABRIC_ENV)
    try:
        deadline = time.monotonic() + 120
        while counts(wired, name)[2] == 0:  # the helper exists: wiring is under way
            assert proc.poll() is None and time.monotonic() < deadline, finish(proc)
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert objects(wired, name)[0], "the crash left the lab's containers, as a crash does"
        assert hoplab_links(host_links()) == before, "but nothing on the host"
    finally:
        if proc.poll() is None:
            proc.kill()
        code, _, err = finish(hoplab("down", "--name", name, env=FABRIC_ENV))
        assert code == 0, err
    assert objects(wired, name) == ([], [])
    assert hoplab_links(host_links()) == before


# --- a broken node is wired again ------------------------------------------------------------


def test_up_restarts_a_broken_node_and_wires_it_again(wired):
    name = unique_lab_name("fabh")
    try:
        lab = bring_up(wired, name)
        alice = lab.node("alice")
        assert alice.run(["ip", "link", "set", alice.iface("lan1").name, "down"]).ok
        lab = bring_up(wired, name)  # the same plan: kept, and healed
        alice = lab.node("alice")
        res = alice.run(["ping", "-4", "-n", "-c1", "-W5", lab.address("srv")], timeout=30)
        assert res.ok and "ttl=62" in res.out, res  # r1 and r2 forward it again
        assert alice.iface("lan1").name == "eth0"
    finally:
        wired.down(name)
    assert objects(wired, name) == ([], [])


def test_a_lab_a_daemon_restart_stopped_is_restarted_in_place_and_wired_again(wired):
    """A daemon restart stops every container, the fabric too, and with it every link; `up`
    starts the same containers again (a participant's files survive) and wires them all."""
    name = unique_lab_name("fabs")
    try:
        lab = bring_up(wired, name)
        assert lab.node("alice").run(["sh", "-c", "echo kept > /root/work"]).ok
        before = {c["Id"] for c in objects(wired, name)[0]}
        for c in objects(wired, name)[0]:
            wired.api.stop(c["Id"], timeout=2)
        result = lifecycle.up(wired, load(COMPOSE), name, lambda *a: None, lambda m: None)
        assert result.report.action == "restarted", result.report
        assert {c["Id"] for c in objects(wired, name)[0]} == before, "restarted, not rebuilt"
        assert counts(wired, name) == (7, 1, 0)
        lab = Lab.attach(wired, name)
        assert lab.node("alice").run(["cat", "/root/work"]).out.strip() == "kept"
        res = lab.node("alice").run(["ping", "-n", "-c1", "-W5", lab.address("carol")], timeout=30)
        assert res.ok and "ttl=62" in res.out, res  # across r1 and r2
        assert whole_or_nothing(wired, name, 7) == "working"
        # one node stopped while the fabric runs: only that node is wired again
        wired.api.stop(lab.state_node("srv").container, timeout=2)
        result = lifecycle.up(wired, load(COMPOSE), name, lambda *a: None, lambda m: None)
        assert result.report.action == "restarted", result.report
        lab = Lab.attach(wired, name)
        res = lab.node("alice").run(["ping", "-n", "-c1", "-W5", lab.address("srv")], timeout=30)
        assert res.ok, res
        assert whole_or_nothing(wired, name, 7) == "working"
    finally:
        wired.down(name)
    assert objects(wired, name) == ([], [])


# --- an engine that refuses the helper ---------------------------------------------------------


def test_an_engine_that_refuses_the_helper_stops_up_before_anything_exists(wired, monkeypatch):
    monkeypatch.setattr(fabric, "refusal", lambda info: "the engine runs rootless (test)")
    refusing = Engine(connect(), wiring=fabric.FABRIC)  # its own: `wired` read `docker info`
    name = unique_lab_name("fabr")
    with pytest.raises(InputError, match="cannot wire labs") as info:
        bring_up(refusing, name)
    assert info.value.exit_code == 2
    assert "nothing was created" in info.value.hint
    assert objects(wired, name) == ([], [])


def test_the_cli_says_so_with_exit_2_for_an_unknown_wiring():
    code, out, err = finish(
        hoplab("up", "--name", unique_lab_name("fabw"), env={fabric.WIRING_ENV: "carrier-pigeon"})
    )
    assert code == 2, (out, err)
    assert "HOPLAB_WIRING" in err and "docker or fabric" in err, err


# --- Ctrl-C ------------------------------------------------------------------------------------


def counts(engine: Engine, name: str) -> tuple[int, int, int]:
    """(nodes, fabrics, helpers) of the lab as the engine lists them."""
    roles = [c["Labels"].get(L.FABRIC, "") for c in objects(engine, name)[0]]
    return (
        roles.count(""),
        roles.count(fabric.FABRIC),
        roles.count(fabric.HELPER_ROLE),
    )


def whole_or_nothing(engine: Engine, name: str, nodes: int) -> str:
    containers, networks = objects(engine, name)
    assert networks == []
    if not containers:
        return "gone"
    assert counts(engine, name) == (nodes, 1, 0), f"half-made: {counts(engine, name)}"
    code, _, err = finish(hoplab("status", "--name", name, env=FABRIC_ENV))
    assert code == 0, err
    lab = Lab.attach(engine, name)
    for node in lab.state.nodes:
        res = lab.node(node.name).run(["ip", "route"])
        assert res.ok, f"{node.name}: {res}"
        missing = [r for r in node.routes if r not in res.out]
        links = lab.node(node.name).run(["ip", "-br", "addr"]).out
        assert not missing, f"{node.name}: {missing} not in\n{res.out}\n{links}"
    return "working"


def test_ctrl_c_at_each_phase_of_a_fabric_up_leaves_the_whole_lab_or_nothing(wired):
    rng = random.Random(24)
    name = unique_lab_name("fabi")
    started = time.monotonic()
    assert finish(hoplab("up", "--name", name, env=FABRIC_ENV))[0] == 0
    full = time.monotonic() - started
    nodes = counts(wired, name)[0]
    wired.down(name)
    events: list[tuple[str, Callable[[], bool]]] = [
        ("the fabric exists", lambda: counts(wired, name)[1] >= 1),
        ("a node exists", lambda: counts(wired, name)[0] >= 1),
        ("the helper wires", lambda: counts(wired, name)[2] >= 1),
        ("every node exists", lambda: counts(wired, name)[0] >= nodes),
    ]
    delays = [rng.uniform(0.1, full) for _ in range(2)]
    outcomes = []
    try:
        for label, happened in events + [(f"{d:.2f} s", lambda: False) for d in delays]:
            proc = hoplab("up", "--name", name, env=FABRIC_ENV)
            if label.endswith(" s"):
                code, _, err = interrupt_after(proc, float(label.split()[0]))
            else:
                code, _, err = interrupt_when(proc, happened)
            assert code in (0, 130, -signal.SIGINT) and "Traceback" not in err, err
            print(f"Ctrl-C at {label}: exit {code}", flush=True)
            outcomes.append((label, code, whole_or_nothing(wired, name, nodes)))
            code, _, err = finish(hoplab("down", "--name", name, env=FABRIC_ENV))
            assert code == 0, err
            assert objects(wired, name) == ([], [])
    finally:
        wired.down(name)
    print(f"fabric up ({full:.1f} s) interrupted: {outcomes}")
    assert [c for label, c, _ in outcomes if label.startswith(("a ", "the fabric"))] == [130, 130]
