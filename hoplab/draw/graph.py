"""The topology as a picture: routers and hosts, networks as segments, addresses on every link.

A Picture is built from a Plan (a topology file, no Docker) or from a running lab's LabState (its
labels), so the CLI, the report and the workshop portal all draw the same thing. Layout is left to
Graphviz (its `neato` spring layout, shipped with `dot`), a tool made for graphs; Mermaid and DOT
are text and need no tool.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import graphviz

from hoplab.errors import HoplabError
from hoplab.model.kinds import Kind, kind_of
from hoplab.model.plan import Plan
from hoplab.model.topology import Role

FORMATS = ("svg", "png", "mermaid", "dot")
FONT = "Helvetica,Arial,sans-serif"  # generic families only: the SVG must not fetch fonts
NET_COLOUR = "#eeeeee"  # nodes are coloured by their kind (model/kinds.py)
DEFAULT_MTU = 1500


@dataclass(frozen=True)
class Link:
    """One attachment: a node's interface on a network, with its address."""

    node: str
    network: str
    address: str
    iface: str = ""


@dataclass(frozen=True)
class PNode:
    name: str
    role: Role
    own_image: bool = False

    @property
    def kind(self) -> Kind:
        return kind_of(self.role, self.own_image)


@dataclass(frozen=True)
class PNet:
    name: str
    subnet: str
    mtu: int | None = None


@dataclass(frozen=True)
class Picture:
    """What is drawn, independent of how: nodes, networks and the links between them."""

    lab: str
    nodes: tuple[PNode, ...]
    networks: tuple[PNet, ...]
    links: tuple[Link, ...]


def from_plan(plan: Plan) -> Picture:
    return Picture(
        lab=plan.lab,
        nodes=tuple(PNode(n.name, n.role, n.app is not None) for n in plan.nodes),
        networks=tuple(PNet(n.name, str(n.subnet), n.mtu) for n in plan.networks),
        links=tuple(
            Link(n.name, i.network, str(i.address)) for n in plan.nodes for i in n.interfaces
        ),
    )


def from_state(
    state: Any,
    ifaces: Mapping[str, Mapping[str, str]] | None = None,
    mtus: Mapping[str, int] | None = None,
) -> Picture:
    """A running lab from its labels (a hoplab.engine LabState).

    Labels do not hold interface names (Docker picks them at run time): pass `ifaces`
    (node -> network -> interface name) when they were read from the nodes.
    """
    ifaces = ifaces or {}
    return Picture(
        lab=state.name,
        nodes=tuple(PNode(n.name, n.role, bool(n.app)) for n in state.nodes),
        networks=tuple(
            PNet(name, subnet, (mtus or {}).get(name)) for name, subnet in state.networks.items()
        ),
        links=tuple(
            Link(n.name, net, addr, ifaces.get(n.name, {}).get(net, ""))
            for n in state.nodes
            for net, addr in n.addresses.items()
        ),
    )


def _net_id(name: str) -> str:
    return f"net_{name}"


def _node_id(name: str) -> str:
    return f"node_{name}"


def _net_label(net: PNet) -> str:
    mtu = f"\nMTU {net.mtu}" if net.mtu and net.mtu != DEFAULT_MTU else ""
    return f"{net.name}\n{net.subnet}{mtu}"


def _link_label(link: Link) -> str:
    return f"{link.iface} {link.address}" if link.iface else link.address


def to_graphviz(pic: Picture) -> graphviz.Graph:
    """Networks are grey segments, routers rounded orange boxes, hosts blue boxes."""
    # neato (spring model) keeps the picture shaped like the network: a chain stays a chain.
    g = graphviz.Graph(name=pic.lab, engine="neato")
    g.attr(
        fontname=FONT,
        label=f"lab {pic.lab}",
        labelloc="t",
        # Scaling apart reads best for a classroom lab; beyond that it makes huge pictures.
        overlap="scale" if len(pic.nodes) <= 30 else "false",
        sep="+30",
        normalize="true",
        splines="line",  # obstacle-avoiding splines cost 30x the time on 100 nodes
    )
    g.attr("node", fontname=FONT, fontsize="11", style="filled")
    g.attr("edge", fontname=FONT, fontsize="9", color="#555555", len="1.9")
    for net in pic.networks:
        g.node(
            _net_id(net.name),
            _net_label(net),
            shape="box",
            height="0.3",
            fillcolor=NET_COLOUR,
            color="#888888",
            penwidth="3",
        )
    # Routers first: `normalize` levels the first edge out of the first node with edges.
    for node in sorted(pic.nodes, key=lambda n: not n.kind.rules.forwards):
        shape = node.kind.rules.shape
        g.node(
            _node_id(node.name),
            f"{node.name}\n({node.kind})" if shape.rounded else node.name,
            shape="box",
            style="filled,rounded,bold" if shape.rounded else "filled",
            fillcolor=shape.fill,
        )
    for link in _backbone_first(pic):
        g.edge(_node_id(link.node), _net_id(link.network), label=_link_label(link))
    return g


def _backbone_first(pic: Picture) -> list[Link]:
    """Links with a router's link to a transit network (one that two routers share) first:
    `normalize` levels that edge, so the backbone runs across the page."""
    routers = {n.name for n in pic.nodes if n.kind.rules.forwards}
    on_net: dict[str, int] = {}
    for link in pic.links:
        on_net[link.network] = on_net.get(link.network, 0) + (link.node in routers)
    return sorted(pic.links, key=lambda ln: not (ln.node in routers and on_net[ln.network] > 1))


def to_dot(pic: Picture) -> str:
    return to_graphviz(pic).source


def to_mermaid(pic: Picture) -> str:
    """Mermaid flowchart text: paste it into any Markdown that renders Mermaid."""
    lines = ["flowchart LR"]
    for net in pic.networks:
        label = _net_label(net).replace("\n", "<br/>")
        lines.append(f'  {_net_id(net.name)}[["{label}"]]')
    for node in pic.nodes:
        shape = node.kind.rules.shape.mermaid
        lines.append(f"  {_node_id(node.name)}{shape[0]}{node.name}{shape[1]}")
    for link in pic.links:
        lines.append(f'  {_node_id(link.node)} ---|"{_link_label(link)}"| {_net_id(link.network)}')
    return "\n".join(lines) + "\n"


_PROLOGUE = re.compile(r"<\?xml[^>]*\?>\s*|<!DOCTYPE[^>]*>\s*|<!--.*?-->\s*", re.S)


def render(pic: Picture, fmt: str = "svg") -> bytes:
    """The picture in one of FORMATS. SVG comes without XML prologue, DOCTYPE or comments, so it
    can be inlined in HTML and references nothing outside itself."""
    if fmt == "dot":
        return to_dot(pic).encode()
    if fmt == "mermaid":
        return to_mermaid(pic).encode()
    if fmt not in FORMATS:
        raise HoplabError(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    try:
        data = to_graphviz(pic).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise HoplabError(
            "Graphviz's `dot` program is not installed; it lays out the topology picture",
            hint="install it: `make sysdeps` or `apt-get install graphviz` "
            "(or use --format mermaid or --format dot, which need no tool)",
        ) from None
    except graphviz.CalledProcessError as err:
        raise HoplabError(f"dot failed: {err.stderr.decode(errors='replace')[-300:]}") from None
    if fmt == "svg":
        data = _PROLOGUE.sub("", data.decode()).encode()
    return data


def svg(source: Plan | Any) -> str:
    """SVG text for a Plan or a running lab's LabState: the one call the report and portal use."""
    pic = from_plan(source) if isinstance(source, Plan) else from_state(source)
    return render(pic, "svg").decode()
