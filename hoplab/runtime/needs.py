"""What an exercise needs from a topology, as small typed requirements, and the matcher that
finds nodes meeting them.

Exercises used to name the default lab's nodes ("alice", "srv"), so on a teacher's own topology
they FAILed with "exercise ran to the end" (no node alice). Now each states roles and needs:

    NEEDS = (Host("client", prefer="alice"), Host("server", prefer="srv"),
             Apart("client", "server", routers=2))

and `match` casts nodes of the running lab into the roles before the exercise runs, or names
the first need the topology cannot meet (an ENV result, never a FAIL). It is pure: it reads a
LabState (names, roles, addresses, route labels, MTUs), so unit tests build one by hand.

The search is deterministic: candidates are tried with the role's preferred name first, then
in name order, so the default lab gets the nodes its lessons were written for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from ipaddress import ip_address, ip_network
from typing import Protocol

from hoplab.engine.state import LabState, NodeState
from hoplab.errors import HoplabError
from hoplab.model.topology import Role

DEFAULT_MTU = 1500  # Docker's bridge driver, when a network sets no MTU of its own
ROUTER = Role.ROUTER  # a StrEnum: equal to the role label's string


class NoRoute(HoplabError):
    """The route labels lead nowhere (or in circles) from a node to an address."""


def route_path(state: LabState, src: str, dst_ip: str) -> list[tuple[str, str]]:
    """Routers from src to dst_ip as (router name, next-hop address), from the route labels:
    what the lab was told to do, which exercises compare with what packets did."""
    owner = {a: n.name for n in state.nodes for a in n.addresses.values()}
    nodes = {n.name: n for n in state.nodes}
    hops: list[tuple[str, str]] = []
    here, target = src, ip_address(dst_ip)
    for _ in range(32):
        node = nodes[here]
        if any(target in ip_network(state.networks[net]) for net in node.addresses):
            return hops
        via = next(
            (r.split(" via ")[1] for r in node.routes if target in ip_network(r.split()[0])),
            None,
        )
        if via is None or via not in owner:
            raise NoRoute(f"{here} has no route to {dst_ip}")
        here = owner[via]
        hops.append((here, via))
    raise NoRoute(f"routing loop from {src} to {dst_ip}")


class Topology:
    """A LabState with the questions needs ask of it, answered once each."""

    def __init__(self, state: LabState) -> None:
        self.state = state
        self.nodes = {n.name: n for n in sorted(state.nodes, key=lambda n: n.name)}
        self.path = cache(self._path)

    @property
    def hosts(self) -> list[NodeState]:
        return [n for n in self.nodes.values() if n.role != ROUTER]

    @property
    def routers(self) -> list[NodeState]:
        return [n for n in self.nodes.values() if n.role == ROUTER]

    def _path(self, src: str, dst: str) -> tuple[str, ...] | None:
        """The routers from src to dst's first address (the one Node.address() gives), or None
        when the route labels lead nowhere."""
        try:
            addr = next(iter(self.nodes[dst].addresses.values()))
            return tuple(r for r, _ in route_path(self.state, src, addr))
        except (NoRoute, StopIteration):
            return None

    def shared(self, a: str, b: str) -> list[str]:
        return [net for net in self.nodes[a].addresses if net in self.nodes[b].addresses]

    def mtu(self, net: str) -> int:
        return self.state.mtus.get(net, DEFAULT_MTU)

    def first_net(self, a: str, b: str) -> str:
        """The network a's packets to b leave on: towards the first router, or b's own."""
        path = self.path(a, b) or ()
        other = path[0] if path else b
        return next(iter(self.shared(a, other) or self.nodes[a].addresses), "")


class Need(Protocol):
    """One requirement over roles: what it asks, whether a cast meets it, what the lab has."""

    @property
    def roles(self) -> tuple[str, ...]: ...

    def text(self) -> str: ...

    def met(self, topo: Topology, cast: dict[str, str]) -> bool: ...

    def observed(self, topo: Topology) -> str: ...

    def hint(self) -> str: ...


def _names(nodes: Sequence[NodeState]) -> str:
    return ", ".join(n.name for n in nodes) or "none"


@dataclass(frozen=True)
class Host:
    """A role played by an end host (not a router), on `homes` or more networks."""

    role: str
    prefer: str = ""
    homes: int = 1

    @property
    def roles(self) -> tuple[str, ...]:
        return (self.role,)

    def text(self) -> str:
        if self.homes > 1:
            return f"a multi-homed host as {self.role} (on {self.homes} or more networks)"
        return f"a host as {self.role}"

    def met(self, topo: Topology, cast: dict[str, str]) -> bool:
        node = topo.nodes[cast[self.role]]
        return node.role != ROUTER and len(node.addresses) >= self.homes

    def observed(self, topo: Topology) -> str:
        most = max((len(n.addresses) for n in topo.hosts), default=0)
        return f"hosts {_names(topo.hosts)}; the most networks one host sits on: {most}"

    def hint(self) -> str:
        return f"give a service {self.homes} entries under networks: (a host on each network)"


@dataclass(frozen=True)
class _Pair:
    """A need between two roles, a and b."""

    a: str
    b: str

    @property
    def roles(self) -> tuple[str, ...]:
        return (self.a, self.b)


@dataclass(frozen=True)
class Apart(_Pair):
    """A route from a to b crossing `routers` or more routers (0: any route, even on one LAN)."""

    routers: int = 0

    def text(self) -> str:
        if self.routers == 0:
            return f"a route from {self.a} to {self.b}"
        many = "one or more routers" if self.routers == 1 else f"{self.routers} or more routers"
        return f"{self.a} and {self.b} {many} apart"

    def met(self, topo: Topology, cast: dict[str, str]) -> bool:
        path = topo.path(cast[self.a], cast[self.b])
        return path is not None and len(path) >= self.routers

    def observed(self, topo: Topology) -> str:
        far = max(
            (
                (len(p), a.name, b.name)
                for a in topo.hosts
                for b in topo.hosts
                if a is not b and (p := topo.path(a.name, b.name)) is not None
            ),
            default=None,
        )
        if far is None:
            return f"no routed pair of hosts among {_names(topo.hosts)}"
        return f"the farthest hosts are {far[1]} and {far[2]}, {far[0]} router(s) apart"

    def hint(self) -> str:
        return f"chain {self.routers} or more routers (x-hoplab role: router) between two hosts"


@dataclass(frozen=True)
class SameLan(_Pair):
    """a sits on one of b's networks, with no router between them."""

    def text(self) -> str:
        return f"{self.a} on a LAN of {self.b}"

    def met(self, topo: Topology, cast: dict[str, str]) -> bool:
        return bool(topo.shared(cast[self.a], cast[self.b]))

    def observed(self, topo: Topology) -> str:
        lans = {
            net: [h.name for h in topo.hosts if net in h.addresses] for net in topo.state.networks
        }
        shared = {n: hs for n, hs in lans.items() if len(hs) > 1}
        return "hosts sharing a LAN: " + (
            "; ".join(f"{n}: {', '.join(hs)}" for n, hs in shared.items()) or "none"
        )

    def hint(self) -> str:
        return "put two hosts on the same network"


@dataclass(frozen=True)
class Ipv6Path(_Pair):
    """IPv6 addresses on a, b and every router between them."""

    def text(self) -> str:
        return f"IPv6 on {self.a}, {self.b} and the routers between"

    def met(self, topo: Topology, cast: dict[str, str]) -> bool:
        path = topo.path(cast[self.a], cast[self.b])
        on = [cast[self.a], cast[self.b], *(path or ())]
        return path is not None and all(topo.nodes[n].addresses6 for n in on)

    def observed(self, topo: Topology) -> str:
        six = [n for n in topo.nodes.values() if n.addresses6]
        return f"nodes with IPv6: {_names(six)}; IPv6 networks: " + (
            ", ".join(topo.state.networks6) or "none"
        )

    def hint(self) -> str:
        return (
            "run it on a dual-stack lab such as the default one (compose.yaml): "
            "enable_ipv6: true and an IPv6 subnet in each network's ipam"
        )


@dataclass(frozen=True)
class SmallerMtu(_Pair):
    """b's LAN (where a's packets to b arrive) has a smaller MTU than the network a sends on,
    with a router between to meet the difference; with `packet`, a packet of that many bytes
    fits where a sends and not on b's LAN."""

    packet: int = 0

    def text(self) -> str:
        size = f" ({self.packet}-byte packets fit only the first)" if self.packet else ""
        return f"a smaller MTU on {self.b}'s LAN than where {self.a} sends, a router between{size}"

    def met(self, topo: Topology, cast: dict[str, str]) -> bool:
        a, b = cast[self.a], cast[self.b]
        path = topo.path(a, b)
        if not path:
            return False
        last = topo.shared(path[-1], b)
        if not last:
            return False
        small, big = topo.mtu(last[0]), topo.mtu(topo.first_net(a, b))
        return small < big and (not self.packet or small < self.packet <= big)

    def observed(self, topo: Topology) -> str:
        mtus = sorted({topo.mtu(n) for n in topo.state.networks})
        own = ", ".join(f"{n} {m}" for n, m in topo.state.mtus.items())
        return f"MTUs {mtus}" + (f" ({own})" if own else f" (every network {DEFAULT_MTU})")

    def hint(self) -> str:
        return (
            "give a host's network a smaller MTU behind a router, e.g. driver_opts: "
            '{com.docker.network.driver.mtu: "1280"}'
        )


@dataclass(frozen=True)
class Masquerade(_Pair):
    """The first router from a towards b is a hoplab/node router, so it can masquerade
    (iptables -t nat) what leaves towards b."""

    def text(self) -> str:
        return f"a router after {self.a} towards {self.b} that can masquerade (hoplab/node)"

    def met(self, topo: Topology, cast: dict[str, str]) -> bool:
        path = topo.path(cast[self.a], cast[self.b])
        return path is not None and len(path) > 0 and not topo.nodes[path[0]].app

    def observed(self, topo: Topology) -> str:
        able = [r for r in topo.routers if not r.app]
        return f"routers that can masquerade: {_names(able)}"

    def hint(self) -> str:
        return "route the clients through a router that runs the hoplab/node image"


def client_server(client: str, server: str, routers: int = 0) -> tuple[Need, ...]:
    """The commonest needs: a client and a server, `routers` or more routers apart (the names
    are the default lab's nodes for the two roles)."""
    return (Host("client", client), Host("server", server), Apart("client", "server", routers))


def around(server: Host, client: str, neighbour: str, other: str) -> tuple[Need, ...]:
    """Three clients around one server: `client` one or more routers away, `neighbour` on a
    LAN of the server, `other` anywhere with a route: many clients meeting one server."""
    return (
        server,
        Host("client", client),
        Host("neighbour", neighbour),
        Host("other", other),
        Apart("client", "server", routers=1),
        SameLan("neighbour", "server"),
        Apart("other", "server"),
    )


@dataclass(frozen=True)
class Missing:
    """The first need no cast of the topology meets: what it asks, and what the lab has."""

    need: str
    observed: str
    hint: str


def _candidates(topo: Topology, host: Host) -> list[str]:
    """Hosts for a role: the preferred name first, then hoplab/node hosts before own-image
    ones (the exercises' programs need python3 in the node), then by name."""
    ranked = sorted(topo.hosts, key=lambda n: (n.name != host.prefer, bool(n.app), n.name))
    return [n.name for n in ranked]


def _casts(topo: Topology, needs: Sequence[Need]) -> Iterator[dict[str, str]]:
    """Every cast (role -> node, one node per role) meeting needs, best first: a depth-first
    search that checks each need as soon as its roles are all cast."""
    hosts = [n for n in needs if isinstance(n, Host)]
    cast: dict[str, str] = {}

    def ready(role: str) -> list[Need]:
        done = set(cast)
        return [n for n in needs if role in n.roles and set(n.roles) <= done]

    def step(i: int) -> Iterator[dict[str, str]]:
        if i == len(hosts):
            yield dict(cast)
            return
        role = hosts[i].role
        for name in _candidates(topo, hosts[i]):
            if name in cast.values():
                continue
            cast[role] = name
            if all(n.met(topo, cast) for n in ready(role)):
                yield from step(i + 1)
            del cast[role]

    yield from step(0)


def match(needs: Sequence[Need], state: LabState) -> dict[str, str] | Missing:
    """The first cast that meets every need, or the first need that no cast meets together
    with those before it (so the report names the one thing the topology lacks)."""
    topo = Topology(state)
    roles = {n.role for n in needs if isinstance(n, Host)}
    unknown = sorted({r for n in needs for r in n.roles} - roles)
    if unknown:  # a typo in an exercise, not in the topology
        raise ValueError(f"needs name roles that no Host declares: {', '.join(unknown)}")
    found = next(_casts(topo, needs), None)
    if found is not None:
        return found
    for i, need in enumerate(needs):
        if next(_casts(topo, needs[: i + 1]), None) is None:
            return Missing(need.text(), need.observed(topo), need.hint())
    raise AssertionError("unreachable: the full set failed, so some prefix fails")


def describe(needs: Sequence[Need]) -> str:
    """The needs in words, for `hoplab list`."""
    return "; ".join(n.text() for n in needs if not isinstance(n, Host) or n.homes > 1) or (
        "; ".join(n.text() for n in needs)
    )
