"""mtu-and-fragmentation: a smaller link on the path either fragments or refuses, by the DF bit."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.errors import HoplabError
from hoplab.exercises.base import Cast, Exercise
from hoplab.runtime.needs import Host, SmallerMtu

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab, Node

LESSON = """\
Every link has an MTU: the largest IP packet it carries in one frame. Ethernet usually takes 1500
bytes, but the lab's lan3 only takes 1280. What happens to a bigger packet at the router in front of
the small link depends on one bit in the IP header: DF, "don't fragment".

- DF clear: the router cuts the packet into fragments that fit. Each fragment carries the same
  IP ID, an offset, and the "more fragments" flag on all but the last. Only the destination
  puts them back together, so the application still receives one datagram (or none at all,
  when a single fragment is lost).
- DF set: the router must not cut it. It drops the packet and sends the sender an ICMP
  "fragmentation needed" (type 3, code 4) that names the next hop's MTU. The sender's kernel
  remembers this path MTU: the socket reads it with IP_MTU, the error queue (IP_RECVERR) holds
  EMSGSIZE, and the next oversized send fails at once with EMSGSIZE. This is path MTU discovery.

Evidence: captures of alice's 1400-byte datagrams to dave on core (whole) and on lan3 (in
fragments), r2's ICMP on core, and what alice's sockets and dave's receiver report.
"""

PORT = 9231
SIZE = 1400  # payload bytes: 1428 on the wire, more than lan3's MTU
HOST_ROUTE_METRIC = 9231  # marks the exercise's own host route on alice
NEEDS = (
    Host("client", prefer="alice"),
    Host("far", prefer="dave"),
    SmallerMtu("client", "far", packet=20 + 8 + SIZE),
)


def run(lab: Lab, cast: Cast) -> list[Check]:
    alice, dave = cast["client"], cast["far"]
    alice_ip, dave_ip = alice.address(), dave.address()
    small_router, small_router_ip = lab.path(alice.name, dave_ip)[-1]
    core = lab.network_of(small_router_ip)
    small = lab.network_of(dave_ip)
    mtu = _mtu(small_router, small)
    cached_before = _cached_pmtu(alice, dave_ip)

    # The learned path MTU is kept per next hop in alice's kernel (for 10 minutes), and this
    # container cannot `ip route flush cache` (/proc/sys is read-only). So the exercise routes to
    # dave over a host route of its own: the PMTU alice learns hangs on that route, nothing from
    # an earlier run is on it, and deleting it at the end forgets the PMTU.
    host_route = _host_route(alice, dave_ip)
    alice.run(["ip", "route", "del", *host_route])  # left over from an interrupted run
    try:
        if not alice.run(["ip", "route", "add", *host_route]).ok:
            raise HoplabError(f"{alice.name}: could not add ip route {' '.join(host_route)}")
        receiver = dave.start_py("net_mtu.py", "recv", PORT, ready="listening")
        bpf = f"(host {alice_ip} and host {dave_ip}) or icmp"
        with (
            lab.capture(small_router.name, core, bpf=bpf, label="mtu-core") as on_core,
            lab.capture(dave.name, small, bpf=bpf, label=f"mtu-{small}") as on_lan3,
        ):
            sent = alice.py("net_mtu.py", "send", dave_ip, PORT, SIZE).json()
            receiver.wait(3)
        got = receiver.json()
    finally:
        alice.run(["ip", "route", "del", *host_route])
    cached_after = _cached_pmtu(alice, dave_ip)

    # Evidence from the captures.
    wire = 20 + 8 + SIZE
    whole = [
        f
        for f in on_core.frames
        if f.src_ip == alice_ip and f.dst_ip == dave_ip and f.ip_len == wire
    ]
    frags = [
        f
        for f in on_lan3.frames
        if f.src_ip == alice_ip and (f.more_fragments or f.frag_offset > 0)
    ]
    icmp = [
        f for f in on_core.frames if (f.icmp_type, f.icmp_code) == (3, 4) and f.dst_ip == alice_ip
    ]
    eq = sent["error_queue"]
    raw = sent["raw_icmp"]
    frag_text = ", ".join(
        f"{f.ip_len} B at offset {f.frag_offset * 8}{' MF' if f.more_fragments else ''}"
        for f in frags
    )
    return [
        check(
            "DF clear: whole on core, cut into fragments by "
            f"{small_router.name} on the {mtu}-byte LAN",
            any(not f.dont_fragment for f in whole)
            and len(frags) >= 2
            and len({f.ip_id for f in frags}) == 1
            and frags[0].frag_offset == 0
            and frags[0].more_fragments
            and not frags[-1].more_fragments
            and all(f.ip_len <= mtu for f in frags),
            f"one {wire}-byte packet without DF on {core}; >= 2 fragments on {small}, same IP ID, "
            f"MF on all but the last, each <= {mtu} bytes",
            f"{len(whole)} whole {wire}-byte packet(s) on {core} "
            f"(DF {[f.dont_fragment for f in whole]}); on {small}: {frag_text or 'no fragments'}",
            evidence=f"mtu-core.pcap, mtu-{small}.pcap",
            hint=f"fragments already on core mean {alice.name} fragmented (a path MTU was "
            "cached); no "
            f"fragments on {small} means the datagram was dropped or {small}'s MTU is not smaller",
        ),
        check(
            f"DF clear: exactly one 1400-byte datagram arrives at {dave.name}",
            got["sizes"] == [SIZE] and sent["df_clear_send"] == "sent",
            f"[{SIZE}] (the DF-set datagram never arrives)",
            f"{got['sizes']}; {alice.name}'s send: {sent['df_clear_send']}",
            evidence=f"{dave.name}: net_mtu.py recv",
            hint="two datagrams mean the DF-set one crossed the small LAN (its MTU is not "
            "smaller); none means the fragments were lost or not reassembled",
        ),
        check(
            f"DF set: {small_router.name} answers with ICMP fragmentation-needed, MTU {mtu}",
            bool(icmp)
            and all(f.src_ip == small_router_ip for f in icmp)
            and bool(raw)
            and all(r == {"from": small_router_ip, "next_hop_mtu": mtu} for r in raw),
            f"ICMP type 3 code 4 from {small_router_ip} on {core}, next-hop MTU {mtu}",
            f"{len(icmp)} on {core} from {sorted({f.src_ip for f in icmp})}; {alice.name}'s raw "
            f"socket: {raw}",
            evidence=f"mtu-core.pcap; {alice.name}: net_mtu.py send (raw ICMP socket)",
            hint=f"no ICMP means the router dropped silently or the packet never left {alice.name} "
            f"(first send: {sent['df_set_first_send']}: EMSGSIZE there means a cached PMTU)",
        ),
        check(
            f"DF set: {alice.name} learns the path MTU, and the next send fails with EMSGSIZE",
            sent["df_set_first_send"] == "sent"
            and eq.get("errno") == "EMSGSIZE"
            and eq.get("offender") == small_router_ip
            and eq.get("mtu") == mtu
            and sent["mtu_after"] == mtu
            and sent["df_set_second_send"] == "EMSGSIZE",
            f"error queue EMSGSIZE from {small_router_ip} with MTU {mtu}; IP_MTU "
            f"{sent['mtu_before']} -> {mtu}; second send EMSGSIZE",
            f"first send {sent['df_set_first_send']}; error queue {eq.get('errno')} from "
            f"{eq.get('offender')} with MTU {eq.get('mtu')}; IP_MTU {sent['mtu_before']} -> "
            f"{sent['mtu_after']}; second send {sent['df_set_second_send']}",
            evidence=f"{alice.name}: net_mtu.py send (IP_MTU_DISCOVER=IP_PMTUDISC_DO, "
            "IP_RECVERR, IP_MTU)",
            hint="without the ICMP the kernel cannot learn the path MTU: look for ICMP filtering "
            "on the routers",
        ),
        check(
            f"{alice.name} forgets the learned path MTU afterwards",
            cached_after == cached_before,
            f"path MTU cache for {dave_ip} as before: {cached_before or 'none'}",
            cached_after or "none",
            evidence=f"{alice.name}: ip -j route get {dave_ip}",
            hint=f"the exercise's host route on {alice.name} should be gone; see `ip route` on "
            f"{alice.name}",
        ),
    ]


def _mtu(node: Node, network: str) -> int:
    res = node.run(["ip", "-j", "link", "show", "dev", node.iface(network).name])
    return int(json.loads(res.out)[0]["mtu"])


def _route_get(node: Node, ip: str) -> dict:
    res = node.run(["ip", "-j", "route", "get", ip])
    if not res.ok:
        raise HoplabError(f"{node.name}: no route to {ip}: {res.err.strip()}")
    return json.loads(res.out)[0]


def _cached_pmtu(node: Node, ip: str) -> int | None:
    """The path MTU the kernel learned for ip, if any (`ip route get` shows it as a metric)."""
    metrics = _route_get(node, ip).get("metrics", [])
    return next((m["mtu"] for m in metrics if "mtu" in m), None)


def _host_route(node: Node, ip: str) -> list[str]:
    """A /32 route to ip through the same next hop, marked by its metric."""
    r = _route_get(node, ip)
    via = ["via", r["gateway"]] if "gateway" in r else []
    return [f"{ip}/32", *via, "dev", r["dev"], "metric", str(HOST_ROUTE_METRIC)]


EXERCISE = Exercise(
    name="mtu-and-fragmentation",
    summary="A smaller-MTU link: DF clear gets fragments, DF set gets ICMP and a path MTU.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
