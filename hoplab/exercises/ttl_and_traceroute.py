"""ttl-and-traceroute: the TTL drops by one at each router, and that is how traceroute works."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from hoplab.checks import Check
from hoplab.exercises.base import Cast, Exercise, drops_once_per_router, hop_list, send_then_trace
from hoplab.runtime.needs import client_server

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab

LESSON = """\
Every IP packet carries a TTL ("time to live"). The sender sets it (Linux uses 64) and every
router that forwards the packet takes one off. Hosts never touch it. So a receiver that reads the
TTL of an arriving packet (socket option IP_RECVTTL) learns how many routers it crossed:
64 minus the number of routers.

When a router takes the TTL to zero it drops the packet and sends back an ICMP "time exceeded"
message from its own address. Traceroute is built on that: send a probe with TTL 1, then 2, then 3,
and read who complains each time (IP_RECVERR puts the ICMP error on the socket's error queue).
The answers list the routers in order, and the destination answers last.

Evidence: the TTL srv saw on alice's datagram, and the hop list of a traceroute made from plain
sockets, both compared with the routes hoplab planned.
"""

PORT = 9100
NEEDS = client_server("alice", "srv", routers=1)


def run(lab: Lab, cast: Cast) -> list[Check]:
    # Set up: srv listens; alice is two routers away in the default lab (read, not assumed).
    src, dst = cast["client"], cast["server"]
    dst_ip = dst.address()
    path = lab.path(src.name, dst_ip)
    listener = dst.start_py("ttl.py", "listen", PORT, ready="listening")

    # Run: one datagram, then a traceroute, captured on every segment of the path by the node
    # that receives there (the report draws each probe's TTL running out as a ladder).
    receivers = [*(n.name for n, _ in path), dst.name]
    nets = [lab.network_of(via) for _, via in path] + [lab.network_of(dst_ip)]
    with contextlib.ExitStack() as stack:
        for i, (net, at) in enumerate(zip(nets, receivers, strict=True)):
            stack.enter_context(lab.capture(at, net, "udp or icmp", f"{i + 1}-{net}-at-{at}"))
        sent, got, trace = send_then_trace(src, listener, "ttl.py", dst_ip, PORT)

    # Check.
    return [
        drops_once_per_router(
            "TTL drops once per router",
            "TTL",
            sent["sent_ttl"],
            got.get("ttl"),
            got.get("peer"),
            path,
            evidence=f"{dst.name}: ttl.py listen (IP_RECVTTL)",
            hint="a host on the path forwarding, or a missing router, changes the count; "
            "compare `hoplab status` routes with the path",
        ),
        hop_list(
            "traceroute lists the routers in order, then the destination",
            trace,
            [via for _, via in path] + [dst_ip],
            evidence="alice: ttl.py trace (IP_TTL + IP_RECVERR)",
            hint="each router answers from the address facing the sender; a '*' means no "
            "time-exceeded came back (ICMP filtered or a router down)",
        ),
    ]


EXERCISE = Exercise(
    name="ttl-and-traceroute",
    summary="The TTL drops by one per router; traceroute reads the routers from ICMP errors.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
