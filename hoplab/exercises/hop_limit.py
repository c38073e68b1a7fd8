"""hop-limit: IPv6's hop limit is the TTL under another name; each router takes one off."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from hoplab.checks import Check, env
from hoplab.exercises.base import Cast, Exercise, drops_once_per_router, hop_list, send_then_trace
from hoplab.runtime.needs import Ipv6Path, client_server

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab, Node

LESSON = """\
IPv6 renamed the TTL: the header's "hop limit" field. The sender sets it (Linux uses 64, unless
the socket option IPV6_UNICAST_HOPS says otherwise) and every router that forwards the packet
takes one off; hosts never touch it. A receiver that asks for IPV6_RECVHOPLIMIT reads how many
routers the packet crossed: 64 minus their number.

A router that takes the hop limit to zero drops the packet and sends ICMPv6 "time exceeded"
(type 3) from its own address, so an IPv6 traceroute works like the IPv4 one: probes with hop
limit 1, 2, 3..., and the errors read from the socket's error queue (IPV6_RECVERR).

Evidence: the hop limit srv saw on alice's datagram, and the hop list of a traceroute from plain
IPv6 sockets, both compared with the routes hoplab planned. A lab without IPv6 gives ENV.
"""

PORT = 9106

NEEDS = (*client_server("alice", "srv", routers=1), Ipv6Path("client", "server"))


def address6(node: Node, network: str) -> str | None:
    """The node's global IPv6 address on that network, read from the node (None without)."""
    res = node.run(["ip", "-6", "-j", "addr", "show", "dev", node.iface(network).name])
    if not res.ok:
        return None
    found = [a.get("local") for i in json.loads(res.out or "[]") for a in i.get("addr_info", [])]
    return next((a for a in found if a and not a.startswith("fe80:")), None)


def run(lab: Lab, cast: Cast) -> list[Check]:
    # Set up: alice and srv, two routers apart in the default lab's shape (read, not assumed).
    src, dst = cast["client"], cast["server"]
    dst_ip = dst.address()
    path = lab.path(src.name, dst_ip)
    dst6 = address6(dst, lab.network_of(dst_ip))
    src6 = address6(src, lab.network_of(src.address()))
    hops6 = [address6(router, lab.network_of(via)) for router, via in path]
    if dst6 is None or src6 is None or None in hops6:
        return [
            env(
                "the hop limit drops once per router",
                f"IPv6 addresses on {src.name}, {dst.name} and the routers between them",
                f"{src.name} {src6}, {dst.name} {dst6}, routers {hops6}",
                "this lab has no IPv6 on that path: run it on a dual-stack lab "
                "such as the default one (compose.yaml)",
            )
        ]
    listener = dst.start_py("hoplimit.py", "listen", PORT, ready="listening")

    # Run: one datagram, then a traceroute.
    sent, got, trace = send_then_trace(src, listener, "hoplimit.py", dst6, PORT)

    # Check.
    return [
        drops_once_per_router(
            "the hop limit drops once per router",
            "hop limit",
            sent["sent_hop_limit"],
            got.get("hop_limit"),
            got.get("peer"),
            path,
            evidence=f"{dst.name}: hoplimit.py listen (IPV6_RECVHOPLIMIT)",
            hint="a missing IPv6 route or a router not forwarding IPv6 changes the count; "
            "compare `ip -6 route` in each node with the path",
        ),
        hop_list(
            "an IPv6 traceroute lists the routers in order, then the destination",
            trace,
            [*hops6, dst6],
            evidence="alice: hoplimit.py trace (IPV6_UNICAST_HOPS + IPV6_RECVERR)",
            hint="each router answers ICMPv6 time exceeded from the address facing the sender; "
            "None means no error came back",
        ),
    ]


EXERCISE = Exercise(
    name="hop-limit",
    summary="IPv6's hop limit drops by one per router; traceroute reads ICMPv6 time exceeded.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
