"""neighbour-discovery: IPv6 finds MAC addresses by solicitations, and only for the next hop."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from hoplab.checks import Check, check, env
from hoplab.exercises.base import Cast, Exercise
from hoplab.exercises.hop_limit import address6
from hoplab.runtime.needs import Ipv6Path, client_server

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab, Node


LESSON = """\
IPv6 has no ARP. A node that needs the MAC address of a neighbour sends an ICMPv6 neighbour
solicitation (type 135) to that address's solicited-node multicast group, and the owner answers
with a neighbour advertisement (type 136). The answer goes into the neighbour cache
(`ip -6 neigh`).

Only neighbours on the same segment are ever solicited. A packet for a far host goes to the
next-hop router, so the sender learns the router's MAC, never the far host's: each segment on
the path runs its own discovery, done by whoever sends onto it.

Evidence: with every cache on the path emptied, one ping from alice to srv; the kernel's ICMPv6
counters (/proc/net/snmp6) of alice, r1 and r2 show a solicitation each, and alice's cache holds
r1 (with r1's MAC) but not srv. A lab without IPv6 gives ENV.
"""

NEEDS = (*client_server("alice", "srv", routers=1), Ipv6Path("client", "server"))


def solicits(node: Node) -> int:
    res = node.run(["cat", "/proc/net/snmp6"])
    for line in res.out.splitlines():
        key, _, value = line.partition(" ")
        if key == "Icmp6OutNeighborSolicits":
            return int(value.strip())
    return -1


def neighbours(node: Node) -> dict[str, str]:
    """Global IPv6 neighbours -> (MAC or state), from the node's cache."""
    res = node.run(["ip", "-6", "-j", "neigh", "show"])
    out = {}
    for entry in json.loads(res.out or "[]"):
        dst = entry.get("dst", "")
        if not dst.startswith("fe80:"):
            out[dst] = entry.get("lladdr") or "/".join(entry.get("state", []))
    return out


def run(lab: Lab, cast: Cast) -> list[Check]:
    # Set up: alice and srv two routers apart; every node on the path forgets its neighbours.
    src, dst = cast["client"], cast["server"]
    dst4 = dst.address()
    path = lab.path(src.name, dst4)
    dst6 = address6(dst, lab.network_of(dst4))
    nexthop = address6(path[0][0], lab.network_of(path[0][1])) if path else None
    if dst6 is None or nexthop is None or address6(src, lab.network_of(src.address())) is None:
        return [
            env(
                "each segment solicits its own neighbour",
                f"IPv6 addresses on {src.name}, {dst.name} and the first router",
                f"{dst.name} {dst6}, next hop {nexthop}",
                "this lab has no IPv6 on that path: run it on a dual-stack lab "
                "such as the default one (compose.yaml)",
            )
        ]
    senders = [src, *(n for n, _ in path)]  # who sends the ping onto each segment
    for node in [*senders, dst]:
        node.run(["ip", "-6", "neigh", "flush", "all"])
    before = {n.name: solicits(n) for n in senders}

    # Run: one ping.
    ping = src.run(["ping", "-6", "-c", "1", "-W", "3", dst6])
    after = {n.name: solicits(n) for n in senders}
    cache = neighbours(src)

    # Check.
    sent = {n: after[n] - before[n] for n in before}
    router = path[0][0]
    router_mac = router.iface(lab.network_of(path[0][1])).mac
    return [
        check(
            "each segment on the path solicits its own neighbour",
            ping.ok and all(v >= 1 for v in sent.values()),
            "ping answered; at least one neighbour solicitation sent by " + ", ".join(sent),
            f"ping {'answered' if ping.ok else 'lost'}; solicitations sent: "
            + ", ".join(f"{n} {v}" for n, v in sent.items()),
            evidence="Icmp6OutNeighborSolicits in /proc/net/snmp6 of each sender, before/after",
            hint="a node that did not solicit already knew its neighbour, or never sent",
        ),
        check(
            f"{src.name} learns only her next hop, never the far host",
            cache.get(nexthop) == router_mac and dst6 not in cache,
            f"{nexthop} -> {router_mac} ({router.name}); no entry for {dst6}",
            ", ".join(f"{a} -> {m}" for a, m in sorted(cache.items())) or "empty cache",
            evidence=f"{src.name}: ip -6 neigh show",
            hint=f"an entry for {dst.name} means {src.name} treated {dst.name}'s subnet as "
            "on-link (a wrong route)",
        ),
    ]


EXERCISE = Exercise(
    name="neighbour-discovery",
    summary="IPv6 solicits neighbours segment by segment; a sender learns only its next hop.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
