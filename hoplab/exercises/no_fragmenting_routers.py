"""no-fragmenting-routers: IPv6 routers never fragment; Packet Too Big makes the sender do it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, env
from hoplab.exercises.base import Cast, Exercise
from hoplab.exercises.hop_limit import address6
from hoplab.runtime.needs import DEFAULT_MTU, Host, Ipv6Path, SmallerMtu

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab, Node

LESSON = """\
An IPv4 router may cut a packet that is too big for the next link into fragments. An IPv6 router
never does: it drops the packet and sends the sender ICMPv6 "Packet Too Big" (type 2) with the
link's MTU. The sender's kernel stores that path MTU and from then on cuts its datagrams itself,
with a Fragment extension header (TCP sends smaller segments instead); only the destination puts
them back together. So an IPv6 sender must keep to the path's MTU. RFC 8200 (section 5) asks
nodes to do path MTU discovery, but lets one skip it and never send packets larger than 1280
bytes, the minimum MTU that every IPv6 link must carry. A network that filters Packet Too Big
breaks big packets for senders that rely on discovery.

Evidence: alice's path MTU cache is emptied, then she pings dave (behind lan3, MTU 1280) with
1400-byte payloads. The kernels' own counters (/proc/net/snmp6) show r2 sending Packet Too Big
and creating no fragment, alice creating fragments, and dave reassembling them.
"""

SIZE = 1400  # bigger than lan3's 1280, smaller than the other links
COUNTERS = ("Icmp6OutPktTooBigs", "Ip6FragCreates", "Ip6ReasmOKs", "Icmp6InPktTooBigs")

NEEDS = (
    Host("client", prefer="alice"),
    Host("far", prefer="dave"),
    SmallerMtu("client", "far", packet=40 + 8 + SIZE),
    Ipv6Path("client", "far"),
)


def counters(node: Node) -> dict[str, int]:
    out = {}
    for line in node.run(["cat", "/proc/net/snmp6"]).out.splitlines():
        key, _, value = line.partition(" ")
        if key in COUNTERS:
            out[key] = int(value.strip())
    return out


def run(lab: Lab, cast: Cast) -> list[Check]:
    # Set up: alice -> dave crosses r1 and r2, and r2 forwards onto the small link (read).
    src, dst = cast["client"], cast["far"]
    dst4 = dst.address()
    path = lab.path(src.name, dst4)
    dst6 = address6(dst, lab.network_of(dst4))
    if dst6 is None or not path or address6(src, lab.network_of(src.address())) is None:
        return [
            env(
                "the router sends Packet Too Big and the sender fragments",
                f"IPv6 addresses on {src.name} and {dst.name}",
                f"{dst.name} {dst6}",
                "this lab has no IPv6 on that path: run it on a dual-stack lab "
                "such as the default one (compose.yaml)",
            )
        ]
    last = path[-1][0]  # the router that forwards onto dave's link
    src.run(["ip", "-6", "route", "flush", "cache"])
    before = {n.name: counters(n) for n in (src, last, dst)}

    # Run: a few big pings; the first meets the small link, the next ones are cut at the source.
    ping = src.run(["ping", "-6", "-c", "4", "-i", "0.3", "-W", "2", "-s", str(SIZE), dst6])
    after = {n.name: counters(n) for n in (src, last, dst)}
    mtu = src.run(["ip", "-6", "route", "get", dst6]).out
    small = lab.network_of(dst4)
    link = (
        f"mtu {lab.state.mtus.get(small, DEFAULT_MTU)}"  # the small link's, as the route learns it
    )

    # Check.
    d = {n: {k: after[n].get(k, 0) - before[n].get(k, 0) for k in COUNTERS} for n in after}
    ptb, router_frags = d[last.name]["Icmp6OutPktTooBigs"], d[last.name]["Ip6FragCreates"]
    src_frags, reasm = d[src.name]["Ip6FragCreates"], d[dst.name]["Ip6ReasmOKs"]
    answered = " 0 received" not in ping.out and ping.ok
    return [
        check(
            f"{last.name} drops the big packet and sends Packet Too Big, fragmenting nothing",
            ptb >= 1 and router_frags == 0,
            "Packet Too Big sent >= 1, fragments created by the router = 0",
            f"Packet Too Big sent {ptb}, fragments created {router_frags}",
            evidence=f"{last.name}: /proc/net/snmp6 before/after",
            hint=f"no Packet Too Big means the packet fit (check {small}'s MTU) or never arrived",
        ),
        check(
            f"{src.name} learns the path MTU and fragments at the source; {dst.name} reassembles",
            answered and link in mtu and src_frags >= 2 and reasm >= 1,
            f"pings answered; {src.name}'s route to {dst6} has {link}; {src.name} creates "
            "fragments, "
            f"{dst.name} reassembles",
            f"pings {'answered' if answered else 'unanswered'}; route: {mtu.strip()}; {src.name} "
            f"created {src_frags} fragments, {dst.name} reassembled {reasm} packets",
            evidence=f"{src.name}: ping -6 -s 1400, ip -6 route get; {src.name}, {dst.name}: "
            "/proc/net/snmp6",
            hint="a filtered Packet Too Big leaves the sender sending packets that never fit",
        ),
    ]


EXERCISE = Exercise(
    name="no-fragmenting-routers",
    summary="IPv6 routers send Packet Too Big instead of fragmenting; the sender fragments.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
