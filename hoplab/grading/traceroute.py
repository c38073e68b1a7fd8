"""traceroute: the participant's traceroute, made from IP_TTL and IP_RECVERR, run on two paths.

Built on ttl-and-traceroute: the expected hops are the routes hoplab planned (Lab.path). What the
program prints is not evidence enough (a program can print the hops that /etc/hosts gives away
without sending anything), so the kernel's ICMP counters (/proc/net/snmp, per node) are read
before and after each run: every router on the path must have sent a time exceeded, the
destination a port unreachable, and the source must have received them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.grading.base import Assignment, cast
from hoplab.grading.sandbox import runtime_check
from hoplab.runtime.needs import Apart, Host, client_server

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.grading.sandbox import Fence
    from hoplab.runtime.lab import Lab, Node

LIMIT = 15.0
MAX_HOPS = 8
HOP = re.compile(r"^\s*(\d+)\s+(\S+)")
CHECKS = (
    f"runs to the end within {LIMIT:g} s, twice",
    "alice -> srv: the routers in order, then srv",
    "carol -> dave: the router, then dave",
    "probes left and ICMP errors came back: time exceeded from each router, port unreachable "
    "from the destination (kernel counters)",
)
COUNTERS = ("OutTimeExcds", "OutDestUnreachs", "InTimeExcds", "InDestUnreachs")

NEEDS = (
    *client_server("alice", "srv", routers=1),
    Host("neighbour", prefer="carol"),
    Host("far", prefer="dave"),
    Apart("neighbour", "far", routers=1),
)


def _expected(lab: Lab, src: str, dst_ip: str) -> list[str]:
    return [via for _, via in lab.path(src, dst_ip)] + [dst_ip]


def _hops(out: str) -> list[str]:
    """'TTL ADDRESS' lines, in order; '*' stands for a probe nobody answered."""
    return [m.group(2) for line in out.splitlines() if (m := HOP.match(line))]


def _icmp(node: Node) -> dict[str, int]:
    """The node's ICMP counters: the kernel's count of what it sent and received."""
    lines = [ln.split() for ln in node.run(["cat", "/proc/net/snmp"]).out.splitlines()]
    rows = [ln for ln in lines if ln and ln[0] == "Icmp:"]
    if len(rows) < 2:
        return {}
    return {k: int(v) for k, v in zip(rows[0][1:], rows[1][1:], strict=False) if v.isdigit()}


def _counters(nodes: list[Node]) -> dict[str, dict[str, int]]:
    with ThreadPoolExecutor(max_workers=len(nodes)) as workers:
        return dict(zip([n.name for n in nodes], workers.map(_icmp, nodes), strict=True))


@dataclass(frozen=True)
class Wire:
    """What the kernels on one path counted while the program ran (after minus before)."""

    src: str
    dst: str  # the destination node
    routers: tuple[str, ...]
    delta: dict[str, dict[str, int]]

    def get(self, node: str, counter: str) -> int:
        return self.delta.get(node, {}).get(counter, 0)

    @property
    def ok(self) -> bool:
        return (
            all(self.get(r, "OutTimeExcds") >= 1 for r in self.routers)
            and self.get(self.dst, "OutDestUnreachs") >= 1
            and self.get(self.src, "InTimeExcds") >= len(self.routers)
            and self.get(self.src, "InDestUnreachs") >= 1
        )

    def want(self) -> str:
        routers = ", ".join(self.routers)
        return (
            f"{self.src} -> {self.dst}: {routers} each send >= 1 time exceeded, {self.dst} "
            f">= 1 port unreachable; {self.src} receives >= {len(self.routers)} time exceeded "
            "and >= 1 unreachable"
        )

    def seen(self) -> str:
        sent = ", ".join(f"{r} {self.get(r, 'OutTimeExcds')}" for r in self.routers)
        return (
            f"{self.src} -> {self.dst}: time exceeded sent by {sent}; port unreachable sent by "
            f"{self.dst} {self.get(self.dst, 'OutDestUnreachs')}; {self.src} received "
            f"{self.get(self.src, 'InTimeExcds')} time exceeded, "
            f"{self.get(self.src, 'InDestUnreachs')} unreachable"
        )


def _run(lab: Lab, fence: Fence, src: str, dst_ip: str):
    """Run the program on src towards dst_ip; return the run and what the wire showed."""
    routers = [r.name for r, _ in lab.path(src, dst_ip)]
    dst = next(n.name for n in lab.state.nodes if dst_ip in n.addresses.values())
    nodes = [lab.node(n) for n in dict.fromkeys([src, *routers, dst])]
    before = _counters(nodes)
    ran = fence.run(lab.node(src), dst_ip, MAX_HOPS, limit=LIMIT)
    after = _counters(nodes)
    delta = {n: {c: after[n].get(c, 0) - before[n].get(c, 0) for c in COUNTERS} for n in after}
    return ran, Wire(src, dst, tuple(routers), delta)


def grade(lab: Lab, fence: Fence) -> Iterator[Check]:
    roles = cast(lab, NEEDS, CHECKS)
    if isinstance(roles, list):
        yield from roles
        return
    routes = [
        (roles["client"].name, roles["server"].address(), CHECKS[1]),
        (roles["neighbour"].name, roles["far"].address(), CHECKS[2]),
    ]
    runs = [(src, dst, name, *_run(lab, fence, src, dst)) for src, dst, name in routes]
    slow = [r for *_, r, _ in runs if not r.ok]
    yield runtime_check(CHECKS[0], slow[0]) if slow else runtime_check(CHECKS[0], runs[0][3])
    for src, dst, name, ran, _ in runs:
        want, got = _expected(lab, src, dst), _hops(ran.out)
        yield check(
            name,
            got == want,
            "\n".join(f"{i} {h}" for i, h in enumerate(want, 1)),
            "\n".join(f"{i} {h}" for i, h in enumerate(got, 1))
            or f"no 'TTL ADDRESS' lines ({ran.describe()})",
            evidence=f"{src}: python3 traceroute.py {dst} {MAX_HOPS}; expected from the lab's "
            "planned routes",
            hint="send a UDP probe with IP_TTL = 1, 2, ..; read who answered from the error "
            "queue (IP_RECVERR, recvmsg(MSG_ERRQUEUE)): the offender's address follows the "
            "16-byte sock_extended_err; stop at the destination (its port-unreachable)",
        )
    wires = [wire for *_, wire in runs]
    yield check(
        CHECKS[3],
        all(w.ok for w in wires),
        "\n".join(w.want() for w in wires),
        "\n".join(w.seen() for w in wires),
        evidence="Icmp OutTimeExcds, OutDestUnreachs, InTimeExcds, InDestUnreachs in "
        "/proc/net/snmp of each node on the path, before and after each run",
        hint="hops printed without probes sent do not count: the hop list must come from the "
        "ICMP errors your probes (UDP datagrams with IP_TTL 1, 2, ..) drew from the routers "
        "and the destination",
    )


ASSIGNMENT = Assignment(
    name="traceroute",
    exercise="ttl-and-traceroute",
    summary="A traceroute made from plain sockets: IP_TTL out, IP_RECVERR back.",
    program="traceroute.py",
    usage=f"python3 traceroute.py HOST MAX_HOPS   (graded on alice and carol, MAX_HOPS {MAX_HOPS})",
    checks=CHECKS,
    grade=grade,
    forbids=("traceroute", "traceroute6", "tracepath", "ping", "nc", "socat"),
)
