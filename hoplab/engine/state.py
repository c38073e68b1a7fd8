"""A lab as the engine sees it, rebuilt from labels alone; pure (no Docker import).

The real engine and the test fake both turn their list results into these with `lab_state`, so
what `hoplab status` shows and what the unit tests check come from the same code.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

from hoplab.model import labels as L
from hoplab.model.kinds import Kind, kind_of, role_from_label
from hoplab.model.topology import Role

MTU_OPT = "com.docker.network.driver.mtu"  # a network's own MTU, as Docker's bridge driver takes it

# A progress callback: (phase, done, total); the CLI draws bars, tests and the API pass a no-op.
Progress = Callable[[str, int, int], None]


def no_progress(phase: str, done: int, total: int) -> None:
    pass


@dataclass(frozen=True)
class NodeState:
    name: str
    container: str
    role: Role
    state: str
    addresses: dict[str, str]
    routes: tuple[str, ...]
    plan: str
    image: str = ""
    app: str = ""  # an own-image node: its user container's state ("" for hoplab/node nodes)
    # A dual-stack node's IPv6 half, apart from the IPv4 fields that exercises and paths read.
    addresses6: dict[str, str] = field(default_factory=dict)
    routes6: tuple[str, ...] = ()

    @property
    def kind(self) -> Kind:
        return kind_of(self.role, bool(self.app))


@dataclass(frozen=True)
class LabState:
    """A lab as the engine sees it: rebuilt from labels alone."""

    name: str
    nodes: tuple[NodeState, ...] = ()
    networks: dict[str, str] = field(default_factory=dict)
    networks6: dict[str, str] = field(default_factory=dict)  # IPv6 subnets of dual-stack networks
    mtus: dict[str, int] = field(default_factory=dict)  # networks with an MTU of their own
    owner: str = ""
    created: str = ""
    source: str = ""
    # Every label of the first node, extra ones included (the pid of the test run that owns it).
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return bool(self.nodes or self.networks)

    @property
    def running(self) -> bool:
        return bool(self.nodes) and all(n.state == "running" for n in self.nodes)


class UpAction(StrEnum):
    """What `up` did with a lab; the value is what the CLI and JSON say."""

    CREATED = "created"  # made afresh (also after removing a stale copy)
    RESTARTED = "restarted"  # kept; its stopped nodes started (and broken ones repaired)
    REPAIRED = "repaired"  # kept; running nodes that a root user broke were restarted
    UNCHANGED = "unchanged"  # kept as it was


@dataclass
class UpReport:
    """What `up` did and where the time went, for the CLI and the benchmark."""

    action: UpAction
    timings: dict[str, float] = field(default_factory=dict)
    repaired: dict[str, str] = field(default_factory=dict)  # node -> what was wrong with it


def lab_state(
    lab: str, containers: list[dict[str, Any]], networks: list[dict[str, Any]]
) -> LabState:
    """Build a LabState from the engine's container and network list entries (their labels)."""
    prefix, RUN = f"{lab}-", "running"
    # An own-image node is a pod: its sandbox is the node; the user's container is its `app`.
    apps = {c["Labels"][L.APP]: c.get("State", "") for c in containers if L.APP in c["Labels"]}
    # A fabric-wired lab (hoplab.engine.fabric): its networks are bridges in a container of
    # their own, described by its labels; the wiring helper is no node either, nor is a tap.
    fabrics = [c for c in containers if c["Labels"].get(L.FABRIC) == FABRIC_ROLE]
    containers = [c for c in containers if not {L.APP, L.FABRIC, L.HELPER} & set(c["Labels"])]
    nodes = []
    for c in sorted(containers, key=lambda c: c["Labels"].get(L.NODE, "")):
        lbl = c["Labels"]
        nets = (c.get("NetworkSettings") or {}).get("Networks") or {}
        if L.WIRES in lbl:
            nets = wired_networks(lbl[L.WIRES], prefix)
        nodes.append(
            NodeState(
                name=lbl.get(L.NODE, ""),
                container=c["Names"][0].lstrip("/"),
                role=role_from_label(lbl.get(L.ROLE, "")),
                state=c.get("State", ""),
                addresses={
                    k.removeprefix(prefix): v.get("IPAddress", "")
                    for k, v in nets.items()
                    if k.startswith(prefix)
                },
                routes=tuple(r for r in lbl.get(L.ROUTES, "").split(";") if r),
                # A pod whose program is gone matches no plan, so `up` rebuilds it.
                plan=lbl.get(L.PLAN, "") if apps.get(lbl.get(L.NODE), "running") == RUN else "",
                image=c.get("ImageID", ""),
                app=apps.get(lbl.get(L.NODE, ""), ""),
                addresses6={
                    k.removeprefix(prefix): v["GlobalIPv6Address"]
                    for k, v in nets.items()
                    if k.startswith(prefix) and v.get("GlobalIPv6Address")
                },
                routes6=tuple(r for r in lbl.get(L.ROUTES6, "").split(";") if r),
            )
        )
    subnets, subnets6, mtus = {}, {}, {}
    for n in networks:
        cfg = (n.get("IPAM") or {}).get("Config") or [{}]
        net = n["Labels"].get(L.NETWORK, n["Name"])
        subnets[net] = cfg[0].get("Subnet", "")
        six = [c["Subnet"] for c in cfg if ":" in c.get("Subnet", "")]
        if six:
            subnets6[net] = six[0]
        with contextlib.suppress(KeyError, ValueError, TypeError):
            mtus[net] = int((n.get("Options") or {})[MTU_OPT])
    for fabric in fabrics:
        for net, about in fabric_networks(fabric["Labels"].get(L.NETS, "")).items():
            subnets[net] = str(about.get("subnet", ""))
            if about.get("subnet6"):
                subnets6[net] = str(about["subnet6"])
            if about.get("mtu"):
                mtus[net] = int(about["mtu"])
    first = containers[0]["Labels"] if containers else {}
    return LabState(
        name=lab,
        nodes=tuple(nodes),
        networks=dict(sorted(subnets.items())),
        networks6=dict(sorted(subnets6.items())),
        mtus=dict(sorted(mtus.items())),
        owner=first.get(L.OWNER, ""),
        created=first.get(L.CREATED, ""),
        source=first.get(L.SOURCE, ""),
        labels=dict(first),
    )


FABRIC_ROLE, HELPER_ROLE = "fabric", "helper"  # values of the FABRIC label


def wired_networks(wires: str, prefix: str) -> dict[str, dict[str, str]]:
    """A fabric-wired node's WIRES label in the shape of Docker's NetworkSettings.Networks, so
    that addresses are read back the same way for both wirings (sorted, like Docker's)."""
    try:
        links = json.loads(wires)
    except ValueError:
        return {}
    out: dict[str, dict[str, str]] = {}
    for link in sorted(links, key=lambda k: str(k.get("network", ""))):
        addrs = [str(a).split("/")[0] for a in link.get("addrs", [])]
        out[prefix + str(link.get("network", ""))] = {
            "IPAddress": next((a for a in addrs if ":" not in a), ""),
            "GlobalIPv6Address": next((a for a in addrs if ":" in a), ""),
        }
    return out


def fabric_networks(nets: str) -> dict[str, dict[str, Any]]:
    """The fabric container's NETS label: network -> {subnet, subnet6, mtu, bridge}."""
    try:
        found = json.loads(nets)
    except ValueError:
        return {}
    return (
        {str(k): v for k, v in found.items() if isinstance(v, dict)}
        if isinstance(found, dict)
        else {}
    )


def labs_from(containers: list[dict[str, Any]], networks: list[dict[str, Any]]) -> list[LabState]:
    """Every lab among the engine's labelled objects, sorted by name."""
    names = sorted({o["Labels"][L.LAB] for o in containers + networks})
    return [
        lab_state(
            name,
            [c for c in containers if c["Labels"][L.LAB] == name],
            [n for n in networks if n["Labels"][L.LAB] == name],
        )
        for name in names
    ]


def json_state(state: LabState) -> str:
    return json.dumps(
        {
            "name": state.name,
            "owner": state.owner,
            "created": state.created,
            "networks": state.networks,
            "networks6": state.networks6,
            "nodes": [
                n.__dict__ | {"routes": list(n.routes), "routes6": list(n.routes6)}
                for n in state.nodes
            ],
        },
        indent=2,
    )


@dataclass(frozen=True)
class Taken:
    """Subnets of every network on the engine except one lab's own, in both families: the
    planner moves the lab's subnets off them (Docker refuses overlapping pools in either)."""

    v4: tuple[IPv4Network, ...] = ()
    v6: tuple[IPv6Network, ...] = ()


def taken_from(networks: list[dict[str, Any]], exclude_lab: str) -> Taken:
    """Pure: the subnets of a network list entry by entry, the lab's own left out."""
    v4: list[IPv4Network] = []
    v6: list[IPv6Network] = []
    for net in networks:
        if (net.get("Labels") or {}).get(L.LAB) == exclude_lab:
            continue
        for cfg in (net.get("IPAM") or {}).get("Config") or []:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                subnet = ip_network(cfg["Subnet"])
                (v4 if isinstance(subnet, IPv4Network) else v6).append(subnet)  # type: ignore[arg-type]
    return Taken(tuple(v4), tuple(v6))
