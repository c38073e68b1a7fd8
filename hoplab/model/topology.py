"""The frozen topology model: what the user asked for, before any address is planned.

Every field comes from the topology file and nothing here knows about Docker, so the loader and the
plan can be tested in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from hoplab.model.images import App
from hoplab.model.impair import Impair


class Role(StrEnum):
    HOST = "host"
    ROUTER = "router"


@dataclass(frozen=True)
class Network:
    name: str
    subnet: IPv4Network
    mtu: int | None = None
    line: int = 0
    gateway: IPv4Address | None = None  # Docker reserves one; None lets the planner pick it
    impair: Impair | None = None  # x-hoplab.impair: on every node's egress (both directions)
    subnet6: IPv6Network | None = None  # enable_ipv6 + a second ipam entry (ULA)


@dataclass(frozen=True)
class Attachment:
    """A node's interface on one network; address None means "assign one for me"."""

    network: str
    address: IPv4Address | None = None
    impair: Impair | None = None  # x-hoplab.impair of this attachment: this node's egress only
    address6: IPv6Address | None = None  # ipv6_address


@dataclass(frozen=True)
class RouteSpec:
    """An explicit route from the file; it overrides the computed shortest path for `to`.

    `to` is a network name or a CIDR; `via` is a router name or an IPv4 address.
    """

    to: str
    via: str
    line: int = 0


@dataclass(frozen=True)
class Node:
    name: str
    role: Role
    attachments: tuple[Attachment, ...]
    routes: tuple[RouteSpec, ...] = ()
    line: int = 0
    app: App | None = None  # the user's own image (a pod with a hoplab/node sandbox), if any

    @property
    def networks(self) -> tuple[str, ...]:
        return tuple(a.network for a in self.attachments)


@dataclass(frozen=True)
class Topology:
    name: str
    source: str
    networks: tuple[Network, ...]
    nodes: tuple[Node, ...]

    def network(self, name: str) -> Network:
        return next(n for n in self.networks if n.name == name)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    @property
    def routers(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role is Role.ROUTER)

    @property
    def hosts(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role is Role.HOST)

    def impairments(self) -> list[tuple[str, str, Impair]]:
        """(node, network, impairment) for every interface that has one: an attachment's own
        impairment replaces its network's for that node."""
        nets = {n.name: n.impair for n in self.networks}
        out = []
        for node in self.nodes:
            for att in node.attachments:
                imp = att.impair or nets.get(att.network)
                if imp is not None:
                    out.append((node.name, att.network, imp))
        return out
