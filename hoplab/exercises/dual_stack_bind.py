"""dual-stack-bind: one [::] socket serves both families, unless IPV6_V6ONLY splits them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, env
from hoplab.exercises.base import Cast, Exercise
from hoplab.exercises.hop_limit import address6
from hoplab.runtime.needs import Ipv6Path, client_server

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab

LESSON = """\
A server that binds "::" (all IPv6 addresses) with IPV6_V6ONLY off, Linux's default, gets IPv4
clients too: they arrive on the same socket as IPv4-mapped addresses, ::ffff:10.77.1.10, and
getpeername() says so. That one socket also holds the port for IPv4, so a second socket on
0.0.0.0 and the same port fails with EADDRINUSE.

With IPV6_V6ONLY on, the [::] socket takes IPv6 only, and an IPv4 socket can hold the same port
at the same time: each family gets its own socket, and IPv4 peers show as plain 10.77.1.10.

Evidence: the peers srv's sockets accepted from alice over each family, and whether 0.0.0.0
could be bound beside [::], with V6ONLY off and on. A lab without IPv6 gives ENV.
"""

PORT = 9107
NEEDS = (*client_server("alice", "srv"), Ipv6Path("client", "server"))


def run(lab: Lab, cast: Cast) -> list[Check]:
    # Set up: srv serves, alice connects over both families (addresses read from the nodes).
    src, dst = cast["client"], cast["server"]
    dst4 = dst.address()
    src4 = src.address()
    dst6 = address6(dst, lab.network_of(dst4))
    src6 = address6(src, lab.network_of(src4))
    if dst6 is None or src6 is None:
        return [
            env(
                "one [::] socket takes IPv4 clients as mapped addresses",
                f"IPv6 addresses on {src.name} and {dst.name}",
                f"{src.name} {src6}, {dst.name} {dst6}",
                f"this lab has no IPv6 on {src.name} and {dst.name}: run it on a dual-stack lab "
                "such as the default one (compose.yaml)",
            )
        ]

    # Run: once with V6ONLY off, once on; each time one IPv4 and one IPv6 client.
    seen = {}
    for v6only in (0, 1):
        port = PORT + v6only
        server = dst.start_py("dualbind.py", "serve", port, v6only, 2, ready="listening")
        clients = [src.py("dualbind.py", "connect", a, port).json() for a in (dst4, dst6)]
        server.wait(5)
        seen[v6only] = (server.json(), clients)
        server.stop()  # already done unless a client never came

    # Check.
    shared, _ = seen[0]
    split, _ = seen[1]

    def peers(result: dict) -> list[str]:
        return sorted(f"{p['socket']} <- {p['peer']}" for p in result.get("peers", []))

    want_shared = sorted([f"[::] <- ::ffff:{src4}", f"[::] <- {src6}"])
    want_split = sorted([f"0.0.0.0 <- {src4}", f"[::] <- {src6}"])
    return [
        check(
            "V6ONLY off: one [::] socket takes IPv4 clients as mapped addresses",
            peers(shared) == want_shared and shared.get("v4_bind") == "EADDRINUSE",
            f"{', '.join(want_shared)}; 0.0.0.0 beside it: EADDRINUSE",
            f"{', '.join(peers(shared)) or 'no peers'}; 0.0.0.0 beside it: "
            f"{shared.get('v4_bind')}; clients {seen[0][1]}",
            evidence=f"{dst.name}: dualbind.py serve V6ONLY=0; {src.name}: dualbind.py connect "
            "(both families)",
            hint="an IPv6 client that cannot connect means no IPv6 route; a plain IPv4 peer means "
            "the [::] socket did not take IPv4",
        ),
        check(
            "V6ONLY on: an IPv4 socket holds the same port beside [::]",
            peers(split) == want_split and split.get("v4_bind") == "bound",
            f"{', '.join(want_split)}; 0.0.0.0 beside it: bound",
            f"{', '.join(peers(split)) or 'no peers'}; 0.0.0.0 beside it: "
            f"{split.get('v4_bind')}; clients {seen[1][1]}",
            evidence=f"{dst.name}: dualbind.py serve V6ONLY=1; {src.name}: dualbind.py connect "
            "(both families)",
            hint="with V6ONLY on, each family needs its own socket",
        ),
    ]


EXERCISE = Exercise(
    name="dual-stack-bind",
    summary="[::] with V6ONLY off takes IPv4 as ::ffff:a.b.c.d; V6ONLY on lets 0.0.0.0 share.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
