"""The IPv6 half of a dual-stack plan: addresses, routes and names, derived from the IPv4 plan.

Pure. Every IPv6 address keeps its IPv4 host offset (10.77.1.10 -> fd77:1::a), so one number
names a node on a segment in both families, and the gateway Docker reserves is the IPv4 plan's
gateway offset (never ::1 by chance, which Docker takes by default and a router may hold). Routes
follow the same next-hop routers as IPv4 (the shortest paths are computed once), so a packet of
either family crosses the same routers. An explicit ipv6_address wins over the derived one.

Side-by-side labs: a file's IPv6 subnet that another lab holds moves to a free one of the same
size in POOL6 (its own pool: the families never compete), keeping every host offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from hoplab.errors import HoplabError
from hoplab.model.plan import Plan, Plan6, remap_subnets
from hoplab.model.topology import Topology

POOL6 = IPv6Network("fd68:6c00::/32")  # "hl": where taken IPv6 subnets move to
CANDIDATES6 = 4096  # of its 2**32 /64s, how many a move tries before calling the pool full


def same_offset(addr: IPv4Address, v4: IPv4Network, v6: IPv6Network) -> IPv6Address:
    """The IPv6 address at addr's host offset in v6 (10.77.1.10 in /24 -> v6 prefix + 0xa)."""
    offset = int(addr) - int(v4.network_address)
    if offset >= v6.num_addresses:
        raise HoplabError(f"{v6} is too small for host offset {offset} of {addr}")
    return v6.network_address + offset


def build_plan6(
    topo: Topology,
    plan: Plan,
    taken: Iterable[IPv6Network] = (),
    current: Mapping[str, IPv6Network] | None = None,
) -> Plan6:
    """The IPv6 plan of topo's IPv6 networks, beside its IPv4 plan (which must be planned).

    `taken`: IPv6 subnets of other labs on the engine; ours move away from them. `current`:
    network name -> the IPv6 subnet a running copy of this lab already uses."""
    have = current or {}
    prefer = {
        n.subnet6: have[n.name] for n in topo.networks if n.subnet6 is not None and n.name in have
    }
    subnets = (n.subnet6 for n in topo.networks if n.subnet6 is not None)
    mapping = remap_subnets(subnets, taken, POOL6, prefer, seed=plan.lab, limit=CANDIDATES6)
    v6 = {n.name: mapping[n.subnet6] for n in topo.networks if n.subnet6 is not None}
    file6 = {n.name: n.subnet6 for n in topo.networks if n.subnet6 is not None}
    v4 = {n.name: n for n in plan.networks}
    explicit = {  # moved with its subnet, at the same offset
        (node.name, a.network): v6[a.network].network_address
        + (int(a.address6) - int(file6[a.network].network_address))
        for node in topo.nodes
        for a in node.attachments
        if a.address6 is not None
    }
    addresses: list[tuple[str, str, IPv6Address]] = []
    owner6: dict[IPv4Address, IPv6Address] = {}  # the IPv4 next hop -> its IPv6 twin
    for node in plan.nodes:
        for iface in node.interfaces:
            if iface.network not in v6:
                continue
            derived = same_offset(iface.address, v4[iface.network].subnet, v6[iface.network])
            addr = explicit.get((node.name, iface.network), derived)
            addresses.append((node.name, iface.network, addr))
            owner6[iface.address] = addr
    gateways = tuple(
        (name, same_offset(v4[name].gateway, v4[name].subnet, subnet))
        for name, subnet in v6.items()
    )
    used = {a for _, _, a in addresses}
    clash = next((g for _, g in gateways if g in used), None)
    if clash is not None:
        raise HoplabError(
            f"IPv6 address {clash} is the gateway Docker reserves",
            hint="pick another ipv6_address for that node",
        )
    by_v4_subnet = {v4[n].subnet: n for n in v6}
    routes: list[tuple[str, IPv6Network, IPv6Address]] = []
    for node in plan.nodes:
        for route in node.routes:
            dest = by_v4_subnet.get(route.dest)
            via = owner6.get(route.via)
            if dest is not None and via is not None:  # both ends speak IPv6
                routes.append((node.name, v6[dest], via))
    names: list[tuple[str, IPv6Address]] = []
    for node in plan.nodes:
        mine = [(net, a) for n, net, a in addresses if n == node.name]
        if mine:
            names.append((node.name, mine[0][1]))
            names.extend((f"{node.name}-{net}", a) for net, a in mine)
    return Plan6(
        subnets=tuple(v6.items()),
        gateways=gateways,
        addresses=tuple(addresses),
        routes=tuple(routes),
        names=tuple(names),
    )
