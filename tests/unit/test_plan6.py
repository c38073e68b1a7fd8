"""The IPv6 half of a dual-stack plan: same host offsets, the IPv4 paths, AAAA names. Pure."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv6Address, IPv6Network

from hoplab.model.load import parse
from hoplab.model.plan import build_plan
from hoplab.model.plan6 import POOL6, build_plan6

DUAL = """
x-hoplab: {name: six}
services:
  r1:
    x-hoplab: {role: router}
    networks:
      lan1: {ipv4_address: 10.61.1.1}
      core: {ipv4_address: 10.61.0.1}
  r2:
    x-hoplab: {role: router}
    networks:
      core: {ipv4_address: 10.61.0.2}
      lan2: {ipv4_address: 10.61.2.1}
      lan3: {ipv4_address: 10.61.3.1}
  alice:
    networks:
      lan1:
        ipv4_address: 10.61.1.10
        ipv6_address: fd61:1::beef
  bob:
    networks:
      lan2: {ipv4_address: 10.61.2.10}
  carol:
    networks:
      lan3: {ipv4_address: 10.61.3.10}
networks:
  lan1:
    enable_ipv6: true
    ipam: {config: [{subnet: 10.61.1.0/24}, {subnet: "fd61:1::/64"}]}
  core:
    enable_ipv6: true
    ipam: {config: [{subnet: 10.61.0.0/24}, {subnet: "fd61::/64"}]}
  lan2:
    enable_ipv6: true
    ipam: {config: [{subnet: 10.61.2.0/24}, {subnet: "fd61:2::/64"}]}
  lan3:
    ipam: {config: [{subnet: 10.61.3.0/24}]}
"""


def plans():
    topo = parse(DUAL, "six.yaml")
    plan = build_plan(topo)
    return plan, build_plan6(topo, plan)


def test_addresses_keep_their_ipv4_host_offset_unless_the_file_says() -> None:
    plan, p6 = plans()
    assert p6.address("r1", "lan1") == IPv6Address("fd61:1::1")
    assert p6.address("r2", "core") == IPv6Address("fd61::2")
    assert p6.address("bob", "lan2") == IPv6Address("fd61:2::a")  # 10.61.2.10 -> ::a
    assert p6.address("alice", "lan1") == IPv6Address("fd61:1::beef")  # the file's own
    assert not any(n == "carol" for n, _, _ in p6.addresses)  # lan3 is IPv4 only
    gw4 = {n.name: n.gateway for n in plan.networks}
    for net, gw6 in p6.gateways:
        assert int(gw6) & 0xFFFFFFFF == int(gw4[net]) & 0xFF  # the IPv4 gateway's offset
        assert gw6 not in {a for _, _, a in p6.addresses}


def test_routes_cross_the_same_routers_as_ipv4() -> None:
    _, p6 = plans()
    routes = {(n, str(d)): str(v) for n, d, v in p6.routes}
    assert routes[("alice", "fd61:2::/64")] == "fd61:1::1"  # via r1, as for 10.61.2.0/24
    assert routes[("alice", "fd61::/64")] == "fd61:1::1"
    assert routes[("r1", "fd61:2::/64")] == "fd61::2"  # r1 -> r2 across core
    assert routes[("bob", "fd61:1::/64")] == "fd61:2::1"
    assert not any(str(d) == "fd61:3::/64" for _, d, _ in p6.routes)  # no IPv6 on lan3
    assert ("carol", "fd61:1::/64") not in routes  # carol has no IPv6 at all


def test_names_have_aaaa_lines_for_nodes_with_ipv6() -> None:
    _, p6 = plans()
    names = dict(p6.names)
    assert names["alice"] == IPv6Address("fd61:1::beef")
    assert names["r2"] == IPv6Address("fd61::2") and names["r2-lan2"] == IPv6Address("fd61:2::1")
    assert "carol" not in names and "r2-lan3" not in names
    assert dict(p6.subnets)["core"] == IPv6Network("fd61::/64")


def test_a_taken_ipv6_subnet_moves_keeping_every_offset() -> None:
    topo = parse(DUAL, "six.yaml")
    plan = build_plan(topo, "other")
    p6 = build_plan6(topo, plan, taken=[IPv6Network("fd61:1::/64"), IPv6Network("fd61::/56")])
    moved = dict(p6.subnets)
    assert moved["lan1"] != IPv6Network("fd61:1::/64") and moved["lan1"].subnet_of(POOL6)
    assert moved["core"].subnet_of(POOL6) and moved["lan2"] == IPv6Network("fd61:2::/64")
    assert moved["lan1"].prefixlen == 64 and not moved["lan1"].overlaps(moved["core"])
    lan1 = moved["lan1"].network_address
    assert p6.address("alice", "lan1") == lan1 + 0xBEEF  # the file's own address moves too
    assert p6.address("r1", "lan1") == lan1 + 1
    routes = {(n, str(d)): v for n, d, v in p6.routes}
    assert routes[("bob", str(moved["lan1"]))] == IPv6Address("fd61:2::1")
    again = build_plan6(topo, plan, taken=[IPv6Network("fd61:1::/64"), IPv6Network("fd61::/56")])
    assert again == p6  # the same answer for the same engine (the lab name seeds the search)


def test_a_running_labs_moved_ipv6_subnets_stay_when_the_files_own_come_free() -> None:
    """Planned again while running, a lab that moved off taken subnets keeps where it went: else
    its digest changes the moment the other lab goes, and `up` rebuilds a healthy lab (found by
    the repair test, beside a test run whose lab held fd77::)."""
    topo = parse(DUAL, "six.yaml")
    plan = build_plan(topo, "other")
    busy = [IPv6Network("fd61:1::/64"), IPv6Network("fd61::/56")]
    first = build_plan6(topo, plan, taken=busy)
    current = dict(first.subnets)
    again = build_plan6(topo, plan, taken=[], current=current)
    assert dict(again.subnets) == current and again == first
    stranger = next(s for s in current.values() if s.subnet_of(POOL6))
    moved = build_plan6(topo, plan, taken=[stranger], current=current)  # taken meanwhile: moves
    assert not any(s.overlaps(stranger) for s in dict(moved.subnets).values())


def test_the_plan_carries_its_ipv6_half_in_the_digest() -> None:
    topo = parse(DUAL, "six.yaml")
    plan = build_plan(topo)
    dual = replace(plan, six=build_plan6(topo, plan))
    assert dual.digest != plan.digest  # a lab that gains IPv6 is recreated, not kept
