"""The planner: addresses, gateways, shortest-path routes, names, subnet remapping. No Docker."""

from __future__ import annotations

from ipaddress import IPv4Address as A
from ipaddress import IPv4Network as N
from ipaddress import IPv6Address as A6
from ipaddress import IPv6Network as N6

import pytest

from hoplab.errors import HoplabError
from hoplab.model.load import load, parse
from hoplab.model.plan import build_plan, remap_subnets
from hoplab.model.plan6 import build_plan6

CHAIN = """\
services:
  r1: {x-hoplab: {role: router}, networks: [a, b]}
  r2: {x-hoplab: {role: router}, networks: [b, c]}
  r3: {x-hoplab: {role: router}, networks: [c, d]}
  h1: {networks: [a]}
  h4: {networks: [d]}
networks:
  a: {ipam: {config: [{subnet: 10.9.1.0/24}]}}
  b: {ipam: {config: [{subnet: 10.9.2.0/24}]}}
  c: {ipam: {config: [{subnet: 10.9.3.0/24}]}}
  d: {ipam: {config: [{subnet: 10.9.4.0/24}]}}
"""


def routes(plan, node):
    return {str(r.dest): str(r.via) for r in plan.node(node).routes}


def test_default_lab_routes_and_names():
    plan = build_plan(load("compose.yaml"))
    assert routes(plan, "alice")["10.77.2.0/24"] == "10.77.1.1"
    assert routes(plan, "r1") == {"10.77.2.0/24": "10.77.0.2", "10.77.3.0/24": "10.77.0.2"}
    assert routes(plan, "r2") == {"10.77.1.0/24": "10.77.0.1"}
    names = dict(plan.names)
    assert names["srv"] == A("10.77.2.100") and names["srv-lan3"] == A("10.77.3.100")
    assert {n.name for n in plan.nodes} <= set(names)
    assert plan.node("alice").container == "hoplab-alice"
    assert plan.network("lan1").docker_name == "hoplab-lan1"


# The default lab's IPv6 half, as the README's table shows it: node -> {network: address}.
DEFAULT6 = {
    "r1": {"core": "fd77::1", "lan1": "fd77:1::1"},
    "r2": {"core": "fd77::2", "lan2": "fd77:2::1", "lan3": "fd77:3::1"},
    "alice": {"lan1": "fd77:1::a"},
    "bob": {"lan1": "fd77:1::b"},
    "carol": {"lan2": "fd77:2::a"},
    "dave": {"lan3": "fd77:3::a"},
    "srv": {"lan2": "fd77:2::64", "lan3": "fd77:3::64"},
}


def test_default_lab_is_dual_stack_with_the_same_routers():
    topo = load("compose.yaml")
    plan = build_plan(topo)
    six = build_plan6(topo, plan)
    assert dict(six.subnets) == {
        "core": N6("fd77::/64"),
        "lan1": N6("fd77:1::/64"),
        "lan2": N6("fd77:2::/64"),
        "lan3": N6("fd77:3::/64"),
    }
    got = {}
    for node, net, addr in six.addresses:
        got.setdefault(node, {})[net] = str(addr)
        v4 = plan.address(node, net)  # every IPv6 address keeps its IPv4 host offset
        assert int(addr) & 0xFF == int(v4) & 0xFF
    assert got == DEFAULT6
    v6routes = {(n, str(d)): str(v) for n, d, v in six.routes}
    assert v6routes[("alice", "fd77:2::/64")] == "fd77:1::1"  # via r1, like 10.77.2.0/24
    assert v6routes[("r1", "fd77:3::/64")] == "fd77::2" and v6routes[("r2", "fd77:1::/64")] == (
        "fd77::1"
    )
    assert v6routes[("srv", "fd77:1::/64")] == "fd77:2::1"  # the same way as its IPv4 route
    assert routes(plan, "srv")["10.77.1.0/24"] == "10.77.2.1"
    names = dict(six.names)
    assert names["srv"] == A6("fd77:2::64") and names["srv-lan3"] == A6("fd77:3::64")
    assert topo.network("lan3").mtu == 1280  # IPv6's minimum, for no-fragmenting-routers


def test_auto_addresses_skip_explicit_ones_and_gateway_is_free():
    plan = build_plan(parse(CHAIN))
    assert plan.address("r1", "a") == A("10.9.1.1") and plan.address("h1", "a") == A("10.9.1.2")
    used = {i.address for n in plan.nodes for i in n.interfaces}
    assert all(net.gateway not in used for net in plan.networks)
    assert plan.network("a").gateway == A("10.9.1.254")


def test_shortest_paths_over_a_chain_of_routers():
    plan = build_plan(parse(CHAIN))
    assert routes(plan, "h1") == {
        "10.9.2.0/24": "10.9.1.1",
        "10.9.3.0/24": "10.9.1.1",
        "10.9.4.0/24": "10.9.1.1",
    }
    assert routes(plan, "r1")["10.9.4.0/24"] == str(plan.address("r2", "b"))
    assert routes(plan, "r3")["10.9.1.0/24"] == str(plan.address("r2", "c"))


def test_shortest_path_prefers_fewer_hops_in_a_ring():
    ring = CHAIN.replace("  h1:", "  r4: {x-hoplab: {role: router}, networks: [a, d]}\n  h1:")
    plan = build_plan(parse(ring))
    # h1 on a reaches d through r4 directly (one hop), not r1-r2-r3.
    assert routes(plan, "h1")["10.9.4.0/24"] == str(plan.address("r4", "a"))


def test_explicit_route_overrides_shortest_path():
    text = CHAIN.replace(
        "  h1: {networks: [a]}",
        "  h1: {networks: [a], x-hoplab: {routes: [{to: d, via: 10.9.1.200}]}}",
    )
    plan = build_plan(parse(text))
    assert routes(plan, "h1")["10.9.4.0/24"] == "10.9.1.200"


def test_taken_subnets_are_remapped_consistently():
    topo = load("compose.yaml")
    taken = [N("10.77.1.0/24"), N("10.176.0.0/24")]
    plan = build_plan(topo, "b", taken=taken)
    new = plan.network("lan1").subnet
    assert new != N("10.77.1.0/24") and not any(new.overlaps(t) for t in taken)
    assert plan.network("lan2").subnet == N("10.77.2.0/24")  # free ones stay
    # host offsets survive, and routes and names follow the new subnet
    assert int(plan.address("alice", "lan1")) - int(new.network_address) == 10
    assert routes(plan, "r2")[str(new)] == "10.77.0.1"
    assert dict(plan.names)["alice"] == plan.address("alice", "lan1")
    assert routes(plan, "alice")["10.77.2.0/24"] == str(plan.address("r1", "lan1"))
    assert plan.remapped == ((N("10.77.1.0/24"), new),)


def test_two_labs_from_one_file_never_overlap():
    topo = load("compose.yaml")
    first = build_plan(topo, "a")
    taken = [n.subnet for n in first.networks]
    second = build_plan(topo, "b", taken=taken)
    for x in first.networks:
        for y in second.networks:
            assert not x.subnet.overlaps(y.subnet)


def test_pool_exhaustion_is_a_clear_error():
    with pytest.raises(HoplabError, match="no free /24"):
        remap_subnets(
            [N("10.1.0.0/24")], [N("10.1.0.0/24"), N("10.200.0.0/23")], N("10.200.0.0/23")
        )


def test_plan_is_pure_and_deterministic():
    topo = load("compose.yaml")
    assert build_plan(topo).digest == build_plan(topo).digest
    assert build_plan(topo, "x").digest != build_plan(topo, "y").digest


def test_a_running_lab_keeps_its_remapped_subnets():
    topo = load("compose.yaml")
    current = {"lan1": N("10.176.9.0/24")}
    plan = build_plan(topo, "x", taken=[N("10.77.0.0/16")], current=current)
    assert plan.network("lan1").subnet == N("10.176.9.0/24")
    others = [n.subnet for n in plan.networks if n.name != "lan1"]
    assert N("10.176.9.0/24") not in others
