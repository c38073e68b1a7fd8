"""Turn a topology into a concrete plan: subnets, addresses, routes, names.

Pure functions only. The engine tells us which subnets are already taken on the Docker Engine;
everything else follows from the model, so the same inputs always give the same lab.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import TypeVar

from hoplab.errors import HoplabError, InputError
from hoplab.model.images import App
from hoplab.model.kinds import Kind, kind_of
from hoplab.model.topology import Role, Topology

DEFAULT_POOL = IPv4Network("10.176.0.0/12")
Net = TypeVar("Net", IPv4Network, IPv6Network)  # a subnet of either family
POOL_HINT = "give a private IPv4 network with host bits zero, e.g. 10.176.0.0/12"


def parse_pool(raw: str | IPv4Network, key: str) -> IPv4Network:
    """A subnet pool (where taken subnets move to) as the user gave it: --pool, HOPLAB_POOL or
    the API's pool=. It must be a private IPv4 network; else an input error names the key."""
    if isinstance(raw, IPv4Network):
        pool = raw
    else:
        try:
            pool = IPv4Network(raw, strict=True)
        except ValueError as err:
            raise InputError(f"invalid pool {raw!r}: {err}", key=key, hint=POOL_HINT) from None
    if not pool.is_private or pool.is_loopback or pool.is_link_local or pool.is_multicast:
        raise InputError(f"pool {pool} is not a private range", key=key, hint=POOL_HINT)
    return pool


@dataclass(frozen=True)
class NetPlan:
    name: str
    docker_name: str
    subnet: IPv4Network
    gateway: IPv4Address
    mtu: int | None = None


@dataclass(frozen=True)
class Interface:
    network: str
    address: IPv4Address


@dataclass(frozen=True)
class Route:
    dest: IPv4Network
    via: IPv4Address

    def __str__(self) -> str:
        return f"{self.dest} via {self.via}"


@dataclass(frozen=True)
class NodePlan:
    name: str
    container: str
    role: Role
    interfaces: tuple[Interface, ...]
    routes: tuple[Route, ...]
    app: App | None = None  # an own-image node: the user's container joins this node's namespace

    def address(self, network: str) -> IPv4Address:
        return next(i.address for i in self.interfaces if i.network == network)

    @property
    def kind(self) -> Kind:
        return kind_of(self.role, self.app is not None)


@dataclass(frozen=True)
class Plan6:
    """The IPv6 half of a dual-stack plan (built by plan6.py), held by the Plan."""

    subnets: tuple[tuple[str, IPv6Network], ...]  # network -> its IPv6 subnet
    gateways: tuple[tuple[str, IPv6Address], ...]  # network -> the address Docker reserves
    addresses: tuple[tuple[str, str, IPv6Address], ...]  # (node, network, address)
    routes: tuple[tuple[str, IPv6Network, IPv6Address], ...]  # (node, dest, via)
    names: tuple[tuple[str, IPv6Address], ...]  # AAAA lines of /etc/hosts

    def address(self, node: str, network: str) -> IPv6Address:
        return next(a for n, net, a in self.addresses if n == node and net == network)

    def address_or_none(self, node: str, network: str) -> IPv6Address | None:
        return next((a for n, net, a in self.addresses if n == node and net == network), None)

    def subnet(self, network: str) -> IPv6Network | None:
        return dict(self.subnets).get(network)

    def gateway(self, network: str) -> IPv6Address:
        return dict(self.gateways)[network]

    def speaks(self, node: str) -> bool:
        """Whether the node has an IPv6 address (else IPv6 stays off inside it)."""
        return any(n == node for n, _, _ in self.addresses)

    def route_text(self, node: str) -> str:
        """The node's IPv6 routes in the entrypoint's HOPLAB_ROUTES words."""
        return ";".join(f"{d} via {v}" for n, d, v in self.routes if n == node)


@dataclass(frozen=True)
class Plan:
    lab: str
    source: str
    networks: tuple[NetPlan, ...]
    nodes: tuple[NodePlan, ...]
    names: tuple[tuple[str, IPv4Address], ...]
    remapped: tuple[tuple[IPv4Network, IPv4Network], ...] = field(default=())
    six: Plan6 | None = None  # the IPv6 half of a dual-stack lab (plan6.py)

    def node(self, name: str) -> NodePlan:
        return next(n for n in self.nodes if n.name == name)

    def network(self, name: str) -> NetPlan:
        return next(n for n in self.networks if n.name == name)

    def address(self, node: str, network: str) -> IPv4Address:
        return self.node(node).address(network)

    @cached_property
    def digest(self) -> str:
        """A fingerprint kept in labels, so `up` can tell a matching lab from a stale one.

        Cached: it walks the whole plan, and every node's labels carry it, so computing it per
        node made bring-up quadratic (about 38 s of CPU at 200 nodes). The plan is frozen."""
        fields = asdict(self) | {"remapped": []}
        if self.six is None:
            del fields["six"]  # an IPv4 lab keeps the digest it had before IPv6 existed
        blob = json.dumps(fields, default=str, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def container_name(lab: str, node: str) -> str:
    return f"{lab}-{node}"


def network_name(lab: str, net: str) -> str:
    return f"{lab}-{net}"


def remap_subnets(
    subnets: Iterable[Net],
    taken: Iterable[Net],
    pool: Net,
    prefer: Mapping[Net, Net] | None = None,
    seed: str = "",
    limit: int | None = None,
) -> dict[Net, Net]:
    """Map each subnet to itself when free, or to a free subnet of the same size from the pool.

    Same size keeps every host offset, so addresses and routes translate one to one. `prefer`
    holds where a running lab already put a subnet, so planning it again gives the same answer.
    The search starts at a place derived from `seed` (the lab name), so labs planned at the
    same moment look in different parts of the pool instead of racing for the lowest subnet;
    `limit` bounds it where a pool holds more candidates than could be tried (IPv6's /32).
    Both families go through here: IPv4 with the subnet pool, IPv6 with plan6.POOL6.
    """
    wanted = list(subnets)
    used = list(taken)
    out: dict[Net, Net] = {}
    for s in wanted:
        choice = (prefer or {}).get(s, s)
        if choice.prefixlen == s.prefixlen and not _clash(choice, used):
            out[s] = choice
            used.append(choice)
    for s in wanted:
        if s in out:
            continue
        if s.prefixlen < pool.prefixlen:
            raise HoplabError(
                f"subnet {s} is taken and is larger than the pool {pool}",
                hint="free the subnet, or give the lab a different subnet in the file",
            )
        free = next(
            (c for c in _candidates(pool, s.prefixlen, seed, limit) if not _clash(c, used)), None
        )
        if free is None:
            raise HoplabError(
                f"no free /{s.prefixlen} left in the pool {pool} to replace {s}",
                hint="run `hoplab ls` and bring down labs you no longer need",
            )
        out[s] = free
        used.append(free)
    return out


def _clash(candidate: Net, used: list[Net]) -> bool:
    return any(candidate.overlaps(u) for u in used)


def _candidates(pool: Net, prefixlen: int, seed: str, limit: int | None) -> Iterator[Net]:
    """Subnets of that size in the pool, starting at a seed-derived one and wrapping."""
    count = 1 << (prefixlen - pool.prefixlen)
    size = 1 << (pool.max_prefixlen - prefixlen)
    start = int(hashlib.sha256(seed.encode()).hexdigest(), 16) % count if seed else 0
    base = int(pool.network_address)
    for i in range(count if limit is None else min(count, limit)):
        yield type(pool)((base + ((start + i) % count) * size, prefixlen))


def _translate(addr: IPv4Address, mapping: dict[IPv4Network, IPv4Network]) -> IPv4Address:
    for old, new in mapping.items():
        if addr in old:
            return new.network_address + (int(addr) - int(old.network_address))
    return addr


def _assign_addresses(topo: Topology) -> dict[tuple[str, str], IPv4Address]:
    """Explicit addresses first, then the lowest free host address in node order."""
    out: dict[tuple[str, str], IPv4Address] = {}
    # An explicit gateway is Docker's: a node given it would fail to start.
    used: dict[str, set[IPv4Address]] = {
        n.name: {n.gateway} if n.gateway else set() for n in topo.networks
    }
    for node in topo.nodes:
        for att in node.attachments:
            if att.address is not None:
                out[(node.name, att.network)] = att.address
                used[att.network].add(att.address)
    for node in topo.nodes:
        for att in node.attachments:
            if att.address is None:
                subnet = topo.network(att.network).subnet
                addr = next(h for h in subnet.hosts() if h not in used[att.network])
                out[(node.name, att.network)] = addr
                used[att.network].add(addr)
    return out


def _gateway(subnet: IPv4Network, used: set[IPv4Address]) -> IPv4Address:
    """Docker's IPAM reserves a gateway even without a host address: take the top free one."""
    addr = subnet.broadcast_address - 1
    while addr in used:
        addr -= 1
    return addr


def _shortest_routes(
    topo: Topology, node: str, addrs: dict[tuple[str, str], IPv4Address]
) -> dict[str, tuple[str, str]]:
    """BFS over networks joined by routers: unattached network -> (first router, shared network).

    Ties go to the earlier network and router in file order, so routes are deterministic.
    """
    me = topo.node(node)
    first: dict[str, tuple[str, str] | None] = {n: None for n in me.networks}
    queue = deque(me.networks)
    while queue:
        net = queue.popleft()
        for router in topo.routers:
            if router.name == node or net not in router.networks:
                continue
            for nxt in router.networks:
                if nxt not in first:
                    first[nxt] = first[net] or (router.name, net)
                    queue.append(nxt)
    return {n: hop for n, hop in first.items() if hop is not None}


def _explicit_via(
    topo: Topology, node: str, via: str, addrs: dict[tuple[str, str], IPv4Address]
) -> IPv4Address:
    if via in {n.name for n in topo.nodes}:
        shared = next(n for n in topo.node(node).networks if n in topo.node(via).networks)
        return addrs[(via, shared)]
    return IPv4Address(via)


def forward_path(plan: Plan, src: str, dest: IPv4Network) -> tuple[list[str], bool]:
    """The nodes a packet for dest visits from src by the planned routes, and whether it loops.

    Pure: the loader uses it to refuse explicit routes that bounce a network between routers.
    The walk stops where dest is attached, where no route matches, or at a next hop no node has.
    """
    owner = {i.address: n.name for n in plan.nodes for i in n.interfaces}
    subnets = {n.name: n.subnet for n in plan.networks}
    probe = dest.network_address
    hops = [src]
    here = plan.node(src)
    while not any(probe in subnets[i.network] for i in here.interfaces):
        matches = [r for r in here.routes if probe in r.dest]
        if not matches:
            break
        nxt = owner.get(max(matches, key=lambda r: r.dest.prefixlen).via)
        if nxt is None:
            break
        looped = nxt in hops
        hops.append(nxt)
        if looped:
            return hops, True
        here = plan.node(nxt)
    return hops, False


def build_plan(
    topo: Topology,
    lab: str | None = None,
    taken: Iterable[IPv4Network] = (),
    pool: IPv4Network = DEFAULT_POOL,
    current: Mapping[str, IPv4Network] | None = None,
) -> Plan:
    """Compute everything the engine needs to create the lab, with no Docker call.

    `current` maps network names to the subnets a running copy of this lab already uses.
    """
    lab = lab or topo.name
    have = current or {}
    prefer = {n.subnet: have[n.name] for n in topo.networks if n.name in have}
    mapping = remap_subnets((n.subnet for n in topo.networks), taken, pool, prefer, seed=lab)
    moved = {o: n for o, n in mapping.items() if o != n}
    addrs = _assign_addresses(topo)

    def tr(a: IPv4Address) -> IPv4Address:
        return _translate(a, moved)

    nets = []
    for net in topo.networks:
        used = {a for (_, n), a in addrs.items() if n == net.name}
        gw = net.gateway or _gateway(net.subnet, used)
        nets.append(
            NetPlan(net.name, network_name(lab, net.name), mapping[net.subnet], tr(gw), net.mtu)
        )
    subnet_of = {n.name: n.subnet for n in nets}

    nodes = []
    for node in topo.nodes:
        routes: dict[IPv4Network, IPv4Address] = {}
        for to, (router, shared) in _shortest_routes(topo, node.name, addrs).items():
            routes[subnet_of[to]] = tr(addrs[(router, shared)])
        for spec in node.routes:
            dest = subnet_of.get(spec.to) or IPv4Network(spec.to)
            dest = moved.get(dest, dest)
            routes[dest] = tr(_explicit_via(topo, node.name, spec.via, addrs))
        nodes.append(
            NodePlan(
                name=node.name,
                container=container_name(lab, node.name),
                role=node.role,
                interfaces=tuple(
                    Interface(a.network, tr(addrs[(node.name, a.network)]))
                    for a in node.attachments
                ),
                routes=tuple(Route(d, v) for d, v in sorted(routes.items())),
                app=node.app,
            )
        )
    names: list[tuple[str, IPv4Address]] = []
    for n in nodes:
        names.append((n.name, n.interfaces[0].address))
        names.extend((f"{n.name}-{i.network}", i.address) for i in n.interfaces)
    return Plan(
        lab=lab,
        source=topo.source,
        networks=tuple(nets),
        nodes=tuple(nodes),
        names=tuple(names),
        remapped=tuple(sorted(moved.items())),
    )
