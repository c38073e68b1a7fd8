"""tcp-echo: a TCP echo server on srv that serves several clients at once.

Built on one-port-many-clients (its 4-tuple check on `ss`) and stream-vs-datagram (N+1 sockets).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.grading.base import Assignment, cast
from hoplab.runtime.evidence import ss_tuples
from hoplab.runtime.needs import Host, around

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.grading.sandbox import Fence
    from hoplab.runtime.lab import Lab

PORT = 7000
BULK = 256 * 1024
HELD = 2  # connections alice holds open while carol talks
CHECKS = (
    f"starts and listens on TCP port {PORT}",
    "echoes to three clients at once, each its own bytes",
    f"srv shows the three 4-tuples side by side on port {PORT} (ss)",
    "one listening socket plus one per client (N+1 sockets)",
    f"a {BULK // 1024} KB stream comes back whole",
    "closes the connection once the client has finished (recv() returned b'')",
)
NEEDS = around(Host("server", prefer="srv"), "alice", "carol", "bob")


def grade(lab: Lab, fence: Fence) -> Iterator[Check]:
    roles = cast(lab, NEEDS, CHECKS)
    if isinstance(roles, list):
        yield from roles
        return
    srv, far, near = roles["server"], roles["client"].name, roles["neighbour"].name
    srv_ip = srv.address()
    server = fence.serve(srv, PORT, listen=f"tcp {PORT}", name=CHECKS[0])
    yield fence.started(CHECKS[0], server)

    # alice (two routers away) holds two connections open; then carol (same LAN) connects and
    # talks while they are open, and holds hers too, so srv has all three at once.
    holders = [
        fence.start_peer(
            lab.node(name), "grade_tcp_clients.py", "hold", srv_ip, PORT, n, 15, ready="holding"
        )
        for name, n in ((far, HELD), (near, 1))
    ]
    table = srv.run(["ss", "-tnH"]).out
    sockets = server.sockets()
    for h in holders:
        h.handshake(signal_before=True)
    for h in holders:
        h.wait(5)
    held, carol = (h.json()["clients"] for h in holders)
    clients = [(far, c) for c in held] + [(near, c) for c in carol]
    exited = server.status()
    yield check(
        CHECKS[1],
        all(c.get("echo") == c["token"] for _, c in clients),
        "; ".join(f"{n} gets {c['token'].strip()!r}" for n, c in clients),
        "; ".join(
            f"{n} got {c.get('echo', c['connect']).strip()!r}"
            if c.get("echo") is not None
            else f"{n}: connect {c['connect']}"
            for n, c in clients
        )
        + exited,
        evidence=f"{far}: grade_tcp_clients.py hold (2 connections held open); {near}: 1 more",
        hint="an empty reply for the second and third client means the server serves one "
        "client until it leaves: give each accepted socket a thread of its own (or use "
        "selectors), and keep accept()ing",
    )
    dialled = {(f"{srv_ip}:{PORT}", f"{ip}:{c['local'][1]}") for ip, c in _locals(lab, clients)}
    seen = ss_tuples(table, PORT)
    yield check(
        CHECKS[2],
        dialled <= seen,
        "; ".join(f"{a} <-> {b}" for a, b in sorted(dialled)),
        "; ".join(f"{a} <-> {b}" for a, b in sorted(seen)) or "no connection on the port",
        evidence="srv: `ss -tnH` while all three clients were connected",
        hint="a missing row is a client whose connection was closed or never accepted",
    )
    yield check(
        CHECKS[3],
        sockets.total == len(clients) + 1,
        f"{len(clients) + 1} sockets: 1 listening + {len(clients)} accepted",
        sockets.describe() + exited,
        evidence="srv: /proc/*/fd of every process of your program (as nobody), while the "
        "three clients were connected",
        hint="fewer: a client not accepted yet, or closed too early; more: sockets never "
        "closed (close each accepted socket when its client leaves)",
    )

    bulk = fence.peer(roles["other"], "grade_tcp_clients.py", "bulk", srv_ip, PORT, BULK)
    exited = server.status()
    yield check(
        CHECKS[4],
        bulk["got"] == BULK and bulk["sha_got"] == bulk["sha_sent"],
        f"{BULK} bytes back, sha256 {bulk['sha_sent'][:12]}..",
        f"{bulk['got']} bytes back, sha256 {bulk['sha_got'][:12]}.."
        + (f" ({bulk['error']})" if bulk["error"] else "")
        + exited,
        evidence="bob: grade_tcp_clients.py bulk (sends while it reads the echo)",
        hint="TCP is a byte stream: recv() returns any amount, so loop until it returns b'', "
        "and send with sendall(), which loops over send() for you",
    )
    yield check(
        CHECKS[5],
        bulk["server_closed"],
        "the server closes after bob shuts his side (bob's recv() returns b'')",
        _closed(bulk) + exited,
        evidence="bob: shutdown(SHUT_WR) after the last byte, then recv() until b''",
        hint="recv() returning b'' means the client has finished: close that socket then, "
        "or the client waits for ever",
    )


def _closed(bulk: dict) -> str:
    if bulk["server_closed"]:
        return "closed"
    if str(bulk["error"]).startswith("connect"):
        return f"bob could not connect ({bulk['error']})"
    return "still open 8 s after bob finished"


def _locals(lab: Lab, clients: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    return [(lab.address(n), c) for n, c in clients if c.get("local")]


ASSIGNMENT = Assignment(
    name="tcp-echo",
    exercise="one-port-many-clients",
    summary="A TCP echo server on srv that serves several clients at once.",
    program="tcp_echo.py",
    usage=f"python3 tcp_echo.py PORT   (graded on srv with PORT {PORT})",
    checks=CHECKS,
    grade=grade,
)
