"""Dual-stack labs on the real engine: IPv6 addresses, routes and names as planned, side-by-side
labs remapped, and isolation that holds for IPv6 (the host's bridge addresses, link-local
included, and another lab stay out of reach of a hostile root node).

One dual-stack lab (examples/dualstack) and one small second lab that asks for the same IPv6
subnet are shared by the module; every test leaves them as it found them.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path

import pytest

from hoplab import lifecycle
from hoplab.checks import Status
from hoplab.engine import egress, egress6, fabric
from hoplab.engine.engine import Engine
from hoplab.exercises import (
    dual_stack_bind,
    hop_limit,
    neighbour_discovery,
    no_fragmenting_routers,
)
from hoplab.exercises.base import Exercise
from hoplab.exercises.runner import run_one
from hoplab.model.load import load, parse
from hoplab.model.plan6 import POOL6
from hoplab.runtime.lab import Lab, Node
from tests.conftest import COMPOSE, unique_lab_name
from tests.test_egress import fabric_bridge, fabric_pid, in_fabric, links_lead_only_into_the_fabric

pytestmark = pytest.mark.docker

DUALSTACK = Path(__file__).resolve().parents[1] / "examples" / "dualstack" / "compose.yaml"

# The second lab asks for lan1's IPv6 subnet, which the first lab holds: it must move.
OTHER = """\
services:
  x: {networks: [a]}
networks:
  a:
    enable_ipv6: true
    ipam: {config: [{subnet: 10.79.1.0/24}, {subnet: "fd78:1::/64"}]}
"""

# In a node: TCP connects to every target at once ("addr" or "addr%iface"), 2 s each; one JSON
# line {target: "connected" | "timeout" | "refused" | error}.
PROBE = r"""
import json, socket, sys, threading
port, targets, out = int(sys.argv[1]), sys.argv[2:], {}
def one(t):
    addr, _, dev = t.partition("%")
    scope = socket.if_nametoindex(dev) if dev else 0
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((addr, port, 0, scope)); out[t] = "connected"
    except socket.timeout:
        out[t] = "timeout"
    except ConnectionRefusedError:
        out[t] = "refused"
    except OSError as e:
        out[t] = e.strerror or str(e)
    finally:
        s.close()
ts = [threading.Thread(target=one, args=(t,)) for t in targets]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps(out))
"""

# In a node: a TCP listener on [::]:port that logs every peer it accepts.
LISTEN = r"""
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1]))); s.listen(16)
print("listening", flush=True)
while True:
    c, peer = s.accept(); print("accepted", peer[0], flush=True); c.close()
"""

PORT = 8086


@pytest.fixture(scope="module")
def labs(engine: Engine) -> Iterator[tuple[Lab, Lab]]:
    first, second = unique_lab_name("v6a"), unique_lab_name("v6b")
    try:
        lifecycle.up(engine, load(DUALSTACK), first, lambda *a: None, lambda m: None)
        lifecycle.up(engine, parse(OTHER, "other.yaml"), second, lambda *a: None, lambda m: None)
        yield Lab.attach(engine, first), Lab.attach(engine, second)
    finally:
        engine.down(second)
        engine.down(first)


def v6_addrs(node, scope: str = "global") -> list[str]:
    res = node.run(["ip", "-6", "-j", "addr", "show", "scope", scope])
    assert res.ok, res.err
    return [a["local"] for i in json.loads(res.out) for a in i.get("addr_info", []) if "local" in a]


def bridge_addrs(lab: Lab) -> dict[str, list[tuple[str, str]]]:
    """Each lab network's host bridge -> its IPv6 addresses (address, scope) on the host."""
    out = {}
    for net in lab.state.networks:
        bridge = egress.bridge_name(f"{lab.name}-{net}")
        res = subprocess.run(
            ["ip", "-6", "-j", "addr", "show", "dev", bridge], capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr
        out[net] = [
            (a["local"], a["scope"]) for i in json.loads(res.stdout) for a in i["addr_info"]
        ]
    return out


def drops(chain: str) -> int:
    """Packets hoplab's IPv6 DROP rules for lab bridges in chain have stopped so far."""
    res = subprocess.run(
        ["ip6tables", "-w", "5", "-L", chain, "-v", "-x", "-n"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    rules = [ln.split() for ln in res.stdout.splitlines() if egress6.TAG in ln]
    return sum(int(r[0]) for r in rules if r[2] == "DROP")


def bridge_mac(lab: Lab, net: str) -> str:
    bridge = egress.bridge_name(f"{lab.name}-{net}")
    res = subprocess.run(
        ["ip", "-j", "link", "show", "dev", bridge], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)[0]["address"]


def address6(lab: Lab, node: str, network: str) -> str:
    """The node's IPv6 address on network, as the engine reports it."""
    return lab.state_node(node).addresses6[network]


def planned_route6(lab: Lab, node: str, network: str) -> list[str]:
    """The node's planned IPv6 route to network in `ip -6 route` words: subnet, via, gateway."""
    subnet = lab.state.networks6[network]
    return next(r.split() for r in lab.state_node(node).routes6 if r.split()[0] == subnet)


def fails_when_broken(
    lab: Lab,
    exercise: Exercise,
    tmp_path: Path,
    node: Node,
    breaks: list[str],
    restores: list[str],
    tidy: tuple[tuple[Node, list[str]], ...] = (),
) -> None:
    """A break-it test: break node with one command and the exercise must FAIL. Whatever
    happens, restores (which must succeed) puts the node back, then tidy's best-effort commands
    clear what the run left behind, so the module's lab is as it was found."""
    assert node.run(breaks).ok
    try:
        result = run_one(lab, exercise, tmp_path)
        assert result.status is Status.FAIL, result.checks
    finally:
        assert node.run(restores).ok
        for other, argv in tidy:
            other.run(argv)


def test_dual_stack_addresses_routes_and_names(labs: tuple[Lab, Lab]) -> None:
    lab, _ = labs
    alice, srv = lab.node("alice"), lab.node("srv")
    assert v6_addrs(alice) == ["fd78:1::a"]  # 10.78.1.10 keeps its offset
    assert sorted(v6_addrs(srv)) == ["fd78:2::80", "fd78:3::64"]  # the file's own, then derived
    routes = alice.run(["ip", "-6", "route", "show"]).out
    assert "default" not in routes  # Docker's route via the host's gateway is gone
    assert "fd78:2::/64 via fd78:1::1" in routes and "fd78:3::/64 via fd78:1::1" in routes
    hosts = alice.run(["getent", "ahostsv6", "srv"]).out
    assert hosts.split()[0] == "fd78:2::80"  # the AAAA line from /etc/hosts
    hops = alice.run(["ping", "-6", "-c", "1", "-W", "2", "srv"])
    assert hops.ok and "ttl=62" in hops.out, hops.out  # two routers forward IPv6
    forwarding = lab.node("r1").run(["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]).out
    assert forwarding.strip() == "1"


def test_a_second_lab_asking_for_the_same_ipv6_subnet_is_moved(
    engine: Engine, labs: tuple[Lab, Lab]
) -> None:
    """On Docker networks it must move; a fabric lab is a world of its own and keeps it."""
    _, other = labs
    [addr] = v6_addrs(other.node("x"))
    got = IPv6Address(addr)
    [asked] = [n.subnet6 for n in parse(OTHER, "other.yaml").networks]
    if engine.wiring == fabric.FABRIC:
        assert got in asked and other.state.networks6 == {"a": str(asked)}
    else:
        assert got not in asked and got in POOL6
    offset = int(IPv4Address(other.address("x"))) & 0xFF
    assert int(got) & 0xFFFF == offset  # its IPv4 host offset holds in the moved subnet


def test_no_node_reaches_the_host_or_another_lab_over_ipv6(
    engine: Engine, labs: tuple[Lab, Lab]
) -> None:
    """alice (root, hostile) aims at every IPv6 address the host has on both labs' bridges, the
    link-local ones through her own interface, the others through a route she adds via the
    host, and at the second lab's node, with every next hop pinned to the bridge's MAC so the
    packets really reach the host. A control connect to srv proves the probe works; the DROP
    rules' counters prove the host saw the attempts and stopped them. A fabric lab: see
    no_fabric_node_reaches_the_host_or_another_lab_over_ipv6."""
    lab, other = labs
    if engine.wiring == fabric.FABRIC:
        no_fabric_node_reaches_the_host_or_another_lab_over_ipv6(engine, lab, other)
        return
    alice, srv, x = lab.node("alice"), lab.node("srv"), other.node("x")
    dev = alice.iface("lan1").name
    own = bridge_addrs(lab)
    host_ll = next(a for a, scope in own["lan1"] if scope == "link")
    targets, routed, local = set(), set(), set()
    for net_addrs in [*own.values(), *bridge_addrs(other).values()]:
        for addr, scope in net_addrs:
            if scope == "link":
                targets.add(f"{addr}%{dev}")
                local.add(addr)
            else:
                targets.add(addr)
                routed.add(addr)
    [x_addr] = v6_addrs(x)
    routed.add(x_addr)
    assert len(routed) >= 6  # 5 bridges' gateways and the other lab's node
    host = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    host.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    host.bind(("::", PORT))
    host.listen(16)
    host.setblocking(False)
    server = srv.start(["python3", "-u", "-c", LISTEN, str(PORT)], ready="listening")
    victim = x.start(["python3", "-u", "-c", LISTEN, str(PORT)], ready="listening")
    added = []
    try:
        for addr in sorted(routed):  # the hostile routes: everything else through the host
            res = alice.run(["ip", "-6", "route", "replace", addr, "via", host_ll, "dev", dev])
            assert res.ok, res.err
            added.append(addr)
        mac = bridge_mac(lab, "lan1")
        for addr in local:  # no neighbour discovery to wait for: straight at the bridge
            res = alice.run(["ip", "-6", "neigh", "replace", addr, "lladdr", mac, "dev", dev])
            assert res.ok, res.err
        srv_addr = address6(lab, "srv", "lan2")
        before = drops("INPUT"), drops("FORWARD")
        res = alice.run(["python3", "-c", PROBE, str(PORT), srv_addr, x_addr, *targets])
        seen = json.loads(res.out)
        after = drops("INPUT"), drops("FORWARD")
        assert seen.pop(srv_addr) == "connected"  # the control: srv across two routers
        assert f"accepted {address6(lab, 'alice', 'lan1')}" in server.output()
        assert all(v != "connected" for v in seen.values()), seen
        assert seen[x_addr] != "connected" and "accepted" not in victim.output()
        with pytest.raises(BlockingIOError):
            host.accept()  # nothing arrived at the host's socket
        gateways = len(routed) - 1  # every SYN to a host address reached it and was dropped
        assert after[0] - before[0] >= gateways, (before, after)
        assert after[1] > before[1], (before, after)  # routed towards the other lab: dropped
    finally:
        host.close()
        for addr in added:
            alice.run(["ip", "-6", "route", "del", addr])
        alice.run(["ip", "-6", "neigh", "flush", "dev", dev])
        server.stop()
        victim.stop()


def no_fabric_node_reaches_the_host_or_another_lab_over_ipv6(
    engine: Engine, lab: Lab, other: Lab
) -> None:
    """No interface of a fabric lab leads to the host (every link ends on a bridge in the lab's
    fabric, which has IPv6 off and no address: there is no host address to aim at). The other
    lab shares alice's IPv6 subnet: its x, given an address that no node of alice's lab holds,
    is on-link for alice, who pins its neighbour entry to x's own MAC; and a link-local
    address she pins to the fabric's bridge (the only other MAC on her link). Nothing connects
    and x accepts nothing; a control connect to srv, across two routers, proves the probe
    works, and x's own connect to its new address proves x listens there."""
    links_lead_only_into_the_fabric(engine, lab)
    alice, srv, x = lab.node("alice"), lab.node("srv"), other.node("x")
    dev, x_dev = alice.iface("lan1").name, x.iface("a").name
    subnet = lab.state.networks6["lan1"]
    assert other.state.networks6["a"] == subnet, "the labs share alice's IPv6 subnet"
    spare = str(IPv6Network(subnet)[0xFFFF])
    held = {a for n in lab.state.nodes for a in n.addresses6.values()}
    assert spare not in held, spare
    x_mac = x.iface("a").mac
    assert x.run(["ip", "-6", "addr", "add", f"{spare}/64", "dev", x_dev, "nodad"]).ok
    bridge_mac = json.loads(
        in_fabric(
            fabric_pid(engine, lab.name),
            "ip",
            "-j",
            "link",
            "show",
            fabric_bridge(engine, lab.name, "lan1"),
        )
    )[0]["address"]
    server = srv.start(["python3", "-u", "-c", LISTEN, str(PORT)], ready="listening")
    victim = x.start(["python3", "-u", "-c", LISTEN, str(PORT)], ready="listening")
    try:
        for cmd in (
            ["ip", "-6", "neigh", "replace", spare, "lladdr", x_mac, "dev", dev],
            ["ip", "-6", "neigh", "replace", "fe80::1", "lladdr", bridge_mac, "dev", dev],
        ):
            assert alice.run(cmd).ok, cmd
        control = other.node("x").run(["python3", "-c", PROBE, str(PORT), spare])
        assert json.loads(control.out)[spare] == "connected", control  # x listens on it
        srv_addr = address6(lab, "srv", "lan2")
        targets = [spare, "fe80::1%" + dev]  # the other lab; the fabric's bridge
        res = alice.run(["python3", "-c", PROBE, str(PORT), srv_addr, *targets])
        seen = json.loads(res.out)
        assert seen.pop(srv_addr) == "connected"  # the control: srv across two routers
        assert f"accepted {address6(lab, 'alice', 'lan1')}" in server.output()
        assert all(v != "connected" for v in seen.values()), seen
        assert "accepted " + address6(lab, "alice", "lan1") not in victim.output()
    finally:
        alice.run(["ip", "-6", "neigh", "flush", "dev", dev])
        x.run(["ip", "-6", "addr", "del", f"{spare}/64", "dev", x_dev])
        server.stop()
        victim.stop()


@pytest.mark.parametrize(
    "exercise",
    [m.EXERCISE for m in (hop_limit, dual_stack_bind, neighbour_discovery, no_fragmenting_routers)],
    ids=lambda e: e.name,
)
def test_ipv6_exercise_passes_on_the_dual_stack_lab(
    labs: tuple[Lab, Lab], tmp_path: Path, exercise: Exercise
) -> None:
    result = run_one(labs[0], exercise, tmp_path)
    assert result.status is Status.PASS, result.checks


# Break: r1 forgets srv's IPv6 LAN, so hop-limit's datagram dies at r1 and the trace ends there;
# alice forgets the way to srv's IPv6 LAN, so dual-stack-bind's IPv6 client never arrives.
@pytest.mark.parametrize(
    ("exercise", "node"),
    [(hop_limit.EXERCISE, "r1"), (dual_stack_bind.EXERCISE, "alice")],
    ids=lambda p: getattr(p, "name", p),
)
def test_ipv6_exercise_fails_when_a_node_loses_its_ipv6_route_to_srv(
    labs: tuple[Lab, Lab], tmp_path: Path, exercise: Exercise, node: str
) -> None:
    lab = labs[0]
    route = planned_route6(lab, node, "lan2")
    fails_when_broken(
        lab,
        exercise,
        tmp_path,
        lab.node(node),
        breaks=["ip", "-6", "route", "del", route[0]],
        restores=["ip", "-6", "route", "replace", *route],
    )


def test_neighbour_discovery_fails_when_alice_thinks_srv_is_on_link(
    labs: tuple[Lab, Lab], tmp_path: Path
) -> None:
    # Break: srv's IPv6 LAN becomes "on-link" for alice, so she solicits srv itself (nobody
    # answers on lan1) instead of her router.
    lab = labs[0]
    alice = lab.node("alice")
    route = planned_route6(lab, "alice", "lan2")
    fails_when_broken(
        lab,
        neighbour_discovery.EXERCISE,
        tmp_path,
        alice,
        breaks=["ip", "-6", "route", "replace", route[0], "dev", alice.iface("lan1").name],
        restores=["ip", "-6", "route", "replace", *route],
        tidy=((alice, ["ip", "-6", "neigh", "flush", "all"]),),
    )


def test_no_fragmenting_routers_fails_when_packet_too_big_is_filtered(
    labs: tuple[Lab, Lab], tmp_path: Path
) -> None:
    # Break: r2 filters its own Packet Too Big, so alice never learns the path MTU.
    lab = labs[0]
    rule = ["OUTPUT", "-p", "icmpv6", "--icmpv6-type", "packet-too-big", "-j", "DROP"]
    fails_when_broken(
        lab,
        no_fragmenting_routers.EXERCISE,
        tmp_path,
        lab.node("r2"),
        breaks=["ip6tables", "-I", *rule],
        restores=["ip6tables", "-D", *rule],
        tidy=((lab.node("alice"), ["ip", "-6", "route", "flush", "cache"]),),
    )


@pytest.mark.docker
def test_a_moved_dual_stack_lab_stays_unchanged_when_its_files_subnets_come_free(
    engine: Engine,
) -> None:
    """Lab b comes up while lab a holds the file's subnets, so b moves in both families. Once a
    is gone, `up` of b must keep it as it is, not plan it back onto the freed subnets and
    rebuild a healthy lab (it did for IPv6 until the planner kept a running lab's subnets)."""
    topo = load(COMPOSE)
    a, b = unique_lab_name("v6a"), unique_lab_name("v6b")
    say = lambda *_: None  # noqa: E731
    try:
        lifecycle.up(engine, topo, a, say, say)
        first = lifecycle.up(engine, topo, b, say, say)
        moved6 = dict(engine.state(b).networks6)
        if engine.wiring == fabric.FABRIC:  # each lab a world of its own: nothing moves
            assert moved6 and moved6 == dict(engine.state(a).networks6)
        else:
            assert moved6 and moved6 != dict(engine.state(a).networks6)
        engine.down(a)
        again = lifecycle.up(engine, topo, b, say, say)
        assert again.report.action == "unchanged", again.report
        assert again.plan.digest == first.plan.digest
        assert dict(engine.state(b).networks6) == moved6
    finally:
        engine.down(a)
        engine.down(b)
