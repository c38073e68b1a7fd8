"""mac-per-hop: MAC addresses change at every router; IP addresses stay the same end to end."""

from __future__ import annotations

import contextlib
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.exercises.base import Cast, Exercise
from hoplab.runtime.needs import client_server

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab, Node

LESSON = """\
A packet that crosses routers travels as a series of frames, one per segment (per LAN). Each
frame is addressed with MAC addresses, and those only mean something on the segment they are
on: the sender's interface and the next hop's interface. So at every router the frame is thrown
away and a new one is built, with new source and destination MACs. The IP packet inside keeps
its source and destination addresses, those of the two end hosts, the whole way. It is not quite
untouched: each router takes one off its TTL and so recomputes its header checksum.

That is also why a host never needs the far host's MAC address. To reach an address off its own
LAN it looks up its route, finds the router (the gateway), and resolves only the router's MAC
(ARP). Its neighbour table holds the router, never the far host.

Evidence: one UDP datagram from alice to srv, captured on each segment of its path (lan1, core,
lan2) at the node that receives it there; the MACs of each hop's interfaces, read from the nodes;
and alice's neighbour table (`ip -j neigh`).
"""

PORT = 9181

NEEDS = client_server("alice", "srv", routers=1)


@dataclass(frozen=True)
class Segment:
    network: str
    sender: Node
    receiver: Node


def segments(lab: Lab, src: Node, dst: Node, dst_ip: str) -> list[Segment]:
    """The LANs the packet crosses, each with the node that puts it on and the one that takes it."""
    path = lab.path(src.name, dst_ip)
    chain = [src, *(router for router, _ in path), dst]
    nets = [lab.network_of(via) for _, via in path] + [lab.network_of(dst_ip)]
    return [Segment(net, chain[i], chain[i + 1]) for i, net in enumerate(nets)]


def run(lab: Lab, cast: Cast) -> list[Check]:
    # Set up: srv waits for one datagram; alice is two routers away (read from the lab).
    src, dst = cast["client"], cast["server"]
    src_ip, dst_ip = src.address(), dst.address()
    segs = segments(lab, src, dst, dst_ip)
    gateway = segs[0].receiver
    token = f"hoplab mac-per-hop {secrets.token_hex(4)}"

    # Run: one datagram, captured on every segment by the node that receives it there.
    with contextlib.ExitStack() as stack:
        caps = [
            stack.enter_context(
                lab.capture(
                    s.receiver.name,
                    s.network,
                    bpf=f"udp and dst port {PORT}",
                    label=f"{i + 1}-{s.network}-at-{s.receiver.name}",
                )
            )
            for i, s in enumerate(segs)
        ]
        # The listener waits 3 s: it starts once the captures are up, right before the send,
        # so slow capture start-up on a loaded machine cannot eat that time.
        listener = dst.start_py("hop_udp.py", "listen", PORT, 3, ready="listening")
        src.py("hop_udp.py", "send", dst_ip, PORT, token).json()
        listener.wait(3)  # a live path delivers it in microseconds; a broken one: bounded
    got = listener.json()
    neigh_res = src.run(["ip", "-j", "neigh", "show", "dev", src.iface(segs[0].network).name])
    neigh = {e["dst"]: e for e in json.loads(neigh_res.out or "[]") if "dst" in e}

    # Collect: the probe's frame on each segment.
    checks = [
        check(
            f"the datagram arrives at {dst.name}",
            got.get("payload") == token and (got.get("peer") or [None])[0] == src_ip,
            f"{token!r} from {src_ip}",
            f"{got.get('payload')!r} from {(got.get('peer') or ['nobody'])[0]}"
            if got.get("received")
            else got.get("error", "nothing"),
            evidence=f"{dst.name}: hop_udp.py listen",
            hint="the path is broken: check the routes (`hoplab status`) and that the routers "
            "are running",
        )
    ]
    ips_seen = set()
    for seg, cap in zip(segs, caps, strict=True):
        frames = [f for f in cap.frames if f.proto == "udp" and f.payload_len == len(token)]
        ips_seen |= {(f.src_ip, f.dst_ip) for f in frames}
        want = (seg.sender.iface(seg.network).mac, seg.receiver.iface(seg.network).mac)
        seen = [(f.src_mac, f.dst_mac) for f in frames]
        checks.append(
            check(
                f"on {seg.network} the frame goes {seg.sender.name} -> {seg.receiver.name} by MAC",
                seen == [want],
                f"one frame {want[0]} -> {want[1]} "
                f"({seg.sender.name} {seg.network} -> {seg.receiver.name} {seg.network})",
                "; ".join(
                    f"{s} -> {d} (IP {f.src_ip} -> {f.dst_ip}, TTL {f.ttl})"
                    for (s, d), f in zip(seen, frames, strict=True)
                )
                or "no frame",
                evidence=str(cap.path or f"capture {seg.receiver.name} on {seg.network}"),
                hint="no frame: the datagram did not reach this segment (a router before it "
                "dropped it or has no route); other MACs: the packet took another path",
            )
        )
    checks.append(
        check(
            "the IP source and destination stay the same on every segment",
            ips_seen == {(src_ip, dst_ip)}
            and all(any(f.proto == "udp" for f in c.frames) for c in caps),
            f"{src_ip} -> {dst_ip} on {', '.join(s.network for s in segs)}",
            ", ".join(f"{s} -> {d}" for s, d in sorted(ips_seen)) or "no frames",
            evidence="the captures above",
            hint="a different source means something rewrote it (NAT on a router?); a missing "
            "segment means the packet never got there",
        )
    )

    # Check: alice resolved only her router's MAC, never srv's.
    gw_ip = gateway.iface(segs[0].network).address
    gw_mac = gateway.iface(segs[0].network).mac
    far = set(lab.state_node(dst.name).addresses.values())
    entry = neigh.get(gw_ip, {})
    checks.append(
        check(
            f"{src.name}'s neighbour table holds its router, never the far host",
            entry.get("lladdr") == gw_mac and not far & set(neigh),
            f"{gw_ip} at {gw_mac} ({gateway.name}); none of {', '.join(sorted(far))}",
            ", ".join(
                f"{ip} at {e.get('lladdr', '?')} {'/'.join(e.get('state', []))}"
                for ip, e in neigh.items()
            )
            or "empty",
            evidence=f"{src.name}: ip -j neigh",
            hint=f"an entry for the far host means {src.name} treats it as on her LAN (an on-link "
            "route) and ARPs for it; it can never answer from another LAN",
        )
    )
    return checks


EXERCISE = Exercise(
    name="mac-per-hop",
    summary="MAC addresses change at every router; the IP addresses stay the same end to end.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
