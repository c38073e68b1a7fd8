"""Graph validation: checks that need the whole topology, not one key at a time.

Addresses unique and inside their subnets, subnets apart, every node reachable from every other
through routers, explicit routes that point at real next hops and never loop. Runs on the
frozen model that compose.py built; the lines for its errors come from the parsed document.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Any

from hoplab.model import ipv6
from hoplab.model.kinds import kind_of
from hoplab.model.lined_yaml import line_of
from hoplab.model.plan import build_plan, forward_path
from hoplab.model.source_file import SourceFile
from hoplab.model.topology import Network, Topology

COUNTS = {1: "one", 2: "two"}  # how errors spell a kind's least number of networks


def validate(topo: Topology, doc: Any) -> None:
    """Checks across fields, on the built model; doc (the parsed file) gives the lines.

    Raise InputError on the first problem: overlapping subnets, duplicate or misplaced
    addresses, routers on one network, routes that are unreachable or loop, parts of the
    topology no router joins."""
    ctx = SourceFile(topo.source)
    services = doc["services"]
    nets = {n.name: n for n in topo.networks}
    ipv6.check(topo, doc, line_of)
    for a, b in _pairs(topo.networks):
        if a.subnet.overlaps(b.subnet):
            raise ctx.fail(
                f"subnet {b.subnet} overlaps {a.subnet} of network {a.name!r}",
                b.line,
                f"networks.{b.name}",
                "give every network its own subnet",
            )
    used: dict[tuple[str, IPv4Address], str] = {}
    counts = dict.fromkeys(nets, 0)
    for node in topo.nodes:
        key = f"services.{node.name}.networks"
        node_nets = services[node.name].get("networks")
        for i, att in enumerate(node.attachments):
            ln = line_of(node_nets, att.network if isinstance(node_nets, dict) else i)
            if att.network not in nets:
                raise ctx.fail(
                    f"unknown network {att.network!r}",
                    ln,
                    f"{key}.{att.network}",
                    f"declare it under networks:, or use one of: {', '.join(nets) or 'none'}",
                )
            counts[att.network] += 1
            if att.address is None:
                continue
            subnet = nets[att.network].subnet
            akey = f"{key}.{att.network}.ipv4_address"
            if att.address not in subnet:
                raise ctx.fail(
                    f"address {att.address} is outside {subnet}",
                    ln,
                    akey,
                    f"pick an address inside {subnet}",
                )
            if att.address in (subnet.network_address, subnet.broadcast_address):
                raise ctx.fail(
                    f"address {att.address} is the network or broadcast address of {subnet}",
                    ln,
                    akey,
                    "pick a host address",
                )
            if att.address == nets[att.network].gateway:
                raise ctx.fail(
                    f"address {att.address} is the network's reserved gateway",
                    ln,
                    akey,
                    "pick another address, or another gateway in ipam.config",
                )
            other = used.get((att.network, att.address))
            if other:
                raise ctx.fail(
                    f"address {att.address} is already used by {other!r}",
                    ln,
                    akey,
                    "every address on a network must be unique",
                )
            used[(att.network, att.address)] = node.name
        kind = kind_of(node.role, node.app is not None)
        if len(node.attachments) < kind.rules.min_networks:
            least = COUNTS.get(kind.rules.min_networks, str(kind.rules.min_networks))
            raise ctx.fail(
                f"a {kind} needs at least {least} networks",
                node.line,
                f"services.{node.name}",
                f"attach it to {least} networks, or make it a host",
            )
    for net in topo.networks:
        if counts[net.name] + 1 > net.subnet.num_addresses - 2:
            raise ctx.fail(
                f"subnet {net.subnet} is too small for {counts[net.name]} nodes and a gateway",
                net.line,
                f"networks.{net.name}",
                "use a larger subnet",
            )
    _check_routes(ctx, topo, nets)
    _check_reachable(ctx, topo)
    _check_route_loops(ctx, topo)


def _pairs(items: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return [(a, b) for i, a in enumerate(items) for b in items[i + 1 :]]


def _check_routes(ctx: SourceFile, topo: Topology, nets: dict[str, Network]) -> None:
    for node in topo.nodes:
        key = f"services.{node.name}.x-hoplab.routes"
        for route in node.routes:
            if route.to not in nets:
                try:
                    IPv4Network(route.to, strict=True)
                except ValueError:
                    raise ctx.fail(
                        f"route target {route.to!r} is neither a network name nor a CIDR",
                        route.line,
                        f"{key}.to",
                        f"use one of: {', '.join(nets)}",
                    ) from None
            mine = set(node.networks)
            if route.to in mine:
                raise ctx.fail(
                    f"route to {route.to!r}: {node.name!r} is attached to it",
                    route.line,
                    f"{key}.to",
                    "a node reaches its own networks directly; remove this route",
                )
            if route.via in {n.name for n in topo.nodes}:
                via = topo.node(route.via)
                may = kind_of(via.role, via.app is not None).rules.may_be_via
                if not may or not mine & set(via.networks):
                    raise ctx.fail(
                        f"route via {route.via!r}: not a router on a network of {node.name!r}",
                        route.line,
                        f"{key}.via",
                        "name a router that shares a network",
                    )
                continue
            try:
                addr = IPv4Address(route.via)
            except ValueError:
                raise ctx.fail(
                    f"route via {route.via!r} is neither a node nor an IPv4 address",
                    route.line,
                    f"{key}.via",
                    "name a router, e.g. via: r1",
                ) from None
            if not any(addr in nets[n].subnet for n in mine):
                raise ctx.fail(
                    f"route via {addr} is not on any network of {node.name!r}",
                    route.line,
                    f"{key}.via",
                    "the next hop must be directly attached",
                )


def _check_reachable(ctx: SourceFile, topo: Topology) -> None:
    """Every node must reach every other: share a network, or be joined through routers."""
    parent = {n.name: n.name for n in topo.networks}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for router in topo.routers:
        first = router.networks[0]
        for other in router.networks[1:]:
            parent[find(other)] = find(first)
    comps = {n.name: {find(net) for net in n.networks} for n in topo.nodes}
    for a, b in _pairs(topo.nodes):
        if not comps[a.name] & comps[b.name]:
            lonely = b if len(b.attachments) <= len(a.attachments) else a
            other = a if lonely is b else b
            raise ctx.fail(
                f"{lonely.role} {lonely.name!r} cannot reach {other.name!r}: "
                "no chain of routers joins their networks",
                lonely.line,
                f"services.{lonely.name}",
                "attach a router to both parts of the topology",
            )


def _check_route_loops(ctx: SourceFile, topo: Topology) -> None:
    """Follow every explicit route through the planned tables: it must not come back around.

    A ring of routers is fine (shortest paths never loop), but explicit routes can send a
    network back and forth between two routers until the TTL runs out.
    """
    if not any(node.routes for node in topo.nodes):
        return
    plan = build_plan(topo)
    subnets = {n.name: n.subnet for n in plan.networks}
    for node in topo.nodes:
        for i, route in enumerate(node.routes):
            dest = subnets.get(route.to) or IPv4Network(route.to)
            hops, loops = forward_path(plan, node.name, dest)
            if loops:
                raise ctx.fail(
                    f"route to {route.to} loops: {' -> '.join(hops)}",
                    route.line,
                    f"services.{node.name}.x-hoplab.routes[{i}]",
                    "each next hop must be closer to the target; fix the routes of "
                    + ", ".join(sorted(set(hops))),
                )
