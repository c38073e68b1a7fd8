"""udp-service: a UDP "who am I" service on srv that answers every datagram with its sender.

Built on stream-vs-datagram: datagrams keep their boundaries, and one socket serves everyone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.grading.base import Assignment, cast
from hoplab.runtime.needs import Host, around

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.grading.sandbox import Fence
    from hoplab.runtime.lab import Lab

PORT = 7001
SIZES = (100, 200, 300)
CLIENTS = ("client", "neighbour", "other")  # roles
NEEDS = around(Host("server", prefer="srv"), "alice", "carol", "dave")
CHECKS = (
    f"starts and listens on UDP port {PORT}",
    "answers alice, carol and dave, each with its own address and port",
    "one reply per datagram: boundaries kept (100, 200, 300 bytes)",
    "serves everyone from one socket",
)


def _reply(ip: str, port: int, payload: str) -> str:
    return f"{ip}:{port} {payload}"


def grade(lab: Lab, fence: Fence) -> Iterator[Check]:
    roles = cast(lab, NEEDS, CHECKS)
    if isinstance(roles, list):
        yield from roles
        return
    srv, clients = roles["server"], [roles[r].name for r in CLIENTS]
    server = fence.serve(srv, PORT, listen=f"udp {PORT}", name=CHECKS[0])
    yield fence.started(CHECKS[0], server)

    # Each client asks srv's address on its own side (alice: lan2, across r1 and r2).
    asked = {}
    for name in clients:
        shared = [
            n for n in lab.state_node(name).addresses if n in lab.state_node(srv.name).addresses
        ]
        target = srv.address(shared[0] if shared else None)
        asked[name] = fence.peer(lab.node(name), "grade_udp_clients.py", "ask", target, PORT, 2, 64)
    sockets = server.sockets()
    exited = server.status()
    want = {n: _reply(lab.address(n), a["local_port"], a["sent"][0]) for n, a in asked.items()}
    got = {n: [r["data"] for r in a["replies"]] for n, a in asked.items()}
    yield check(
        CHECKS[1],
        all(got[n] == [want[n]] for n in clients),
        "; ".join(f"{n} gets {want[n][:40]!r}.. from port {PORT}" for n in clients),
        "; ".join(
            f"{n} got {[g[:40] for g in got[n]] or 'nothing'}{_strays(asked[n])}" for n in clients
        )
        + exited,
        evidence="alice, carol, dave: grade_udp_clients.py ask (one 64-byte datagram each; "
        "only a datagram from the address and port asked counts, as for a connect()ed client)",
        hint="recvfrom() returns (data, (ip, port)) of the sender: reply with sendto() on the "
        "socket that received, to exactly that address, as b'IP:PORT ' + data (a reply from "
        "another socket leaves from another port, and a connect()ed client never sees it)",
    )

    boundary = fence.peer(
        roles["client"],
        "grade_udp_clients.py",
        "ask",
        srv.address(),
        PORT,
        2,
        *SIZES,
    )
    head = f"{roles['client'].address()}:{boundary['local_port']} "
    want_sizes = sorted(len(head) + n for n in SIZES)
    replies = [r["data"] for r in boundary["replies"]]
    exited = server.status()
    yield check(
        CHECKS[2],
        sorted(replies) == sorted(head + p for p in boundary["sent"]),
        f"3 replies of {want_sizes} bytes, each its own datagram with the header",
        f"{len(replies)} replies of {sorted(len(r) for r in replies)} bytes"
        + _strays(boundary)
        + exited,
        evidence="alice: grade_udp_clients.py ask, three datagrams sent back to back",
        hint="one recvfrom() is one datagram, whole: answer each with one sendto(); a buffer "
        "smaller than the datagram cuts it (use recvfrom(65535))",
    )
    yield check(
        CHECKS[3],
        sockets.total == 1,
        "1 socket in the server (all its processes)",
        sockets.describe() + exited,
        evidence="srv: /proc/*/fd of every process of your program (as nobody), after the "
        "clients were answered",
        hint="a UDP server needs no socket per client (nor a process per client): recvfrom() "
        "says who sent each datagram",
    )


def _strays(asked: dict) -> str:
    """Datagrams that came from elsewhere than the address and port asked: not replies."""
    strays = asked.get("strays", [])
    if not strays:
        return ""
    where = ", ".join(sorted({f"{ip}:{port}" for ip, port in (s["from"] for s in strays)}))
    return f" ({len(strays)} datagram(s) from {where}, not from port {PORT}: not a reply)"


ASSIGNMENT = Assignment(
    name="udp-service",
    exercise="stream-vs-datagram",
    summary="A UDP service on srv that answers each datagram with its sender's address.",
    program="udp_service.py",
    usage=f"python3 udp_service.py PORT   (graded on srv with PORT {PORT})",
    checks=CHECKS,
    grade=grade,
)
