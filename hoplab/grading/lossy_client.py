"""lossy-client: a UDP request/response client that survives a router dropping packets.

Built on tcp-recovers-loss: r1 drops every Nth datagram of the flow (iptables nth, so the loss
is the same on every run), and the client must do what TCP does for its bytes: time out, resend.
The loss applies to every address of srv (a client cannot dodge it through srv's other
interface), and only alice's requests count: the server answers nobody else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.errors import HoplabError
from hoplab.grading.base import Assignment, cast
from hoplab.grading.sandbox import runtime_check
from hoplab.runtime.evidence import network_towards
from hoplab.runtime.needs import client_server

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.grading.sandbox import Fence
    from hoplab.runtime.lab import Lab, Proc

PORT = 7003
COUNT = 12
EVERY = 3  # r1 drops every 3rd request datagram from alice to srv
LIMIT = 10.0
SLACK = 3  # resends beyond the dropped ones that a slow reply may cause (a 0.5 s timeout)
CHECKS = (
    f"runs to the end within {LIMIT:g} s while r1 drops every {EVERY}rd request",
    f"prints the server's reply to each of the {COUNT} requests, in order",
    "resends what the router dropped: the server got every request",
    "resends only what was lost (no flooding)",
)

NEEDS = client_server("alice", "srv", routers=1)  # loss on the routers on the way


def _loss_points(lab: Lab, src: str, dst: str) -> list[tuple[str, str]]:
    """(router, network) where src's packets to any address of dst leave its first router.

    The loss must apply whichever of dst's addresses the client sends to: a multi-homed srv is
    reached through r1 whether the client dials its lan2 or its lan3 address. One entry per
    distinct egress, in a stable order."""
    points = []
    for ip in lab.state_node(dst).addresses.values():
        hops = lab.path(src, ip)
        if not hops:
            raise HoplabError(f"{src} reaches {dst}'s {ip} without a router: nowhere to drop")
        router = hops[0][0]
        point = (router.name, network_towards(lab, router, ip))
        if point not in points:
            points.append(point)
    return points


def grade(lab: Lab, fence: Fence) -> Iterator[Check]:
    roles = cast(lab, NEEDS, CHECKS)
    if isinstance(roles, list):
        yield from roles
        return
    alice, srv = roles["client"], roles["server"]
    srv_ip = srv.address()
    secret = secrets.token_hex(8)
    # The secret reaches the peer in a root-only file; the peer answers alice alone.
    server = fence.start_peer(
        srv,
        "grade_udp_server.py",
        "serve",
        PORT,
        fence.secret(srv, secret),
        alice.address(),
        ready='"listening"',
    )
    # No -d: every datagram alice sends to the port through the router counts, to whichever
    # address of srv (or anywhere else) it goes.
    match = ["-p", "udp", "-s", alice.address(), "--dport", str(PORT)]
    with contextlib.ExitStack() as stack:
        losses = [
            stack.enter_context(lab.impair(router, net, every=EVERY, match=match))
            for router, net in _loss_points(lab, alice.name, srv.name)
        ]
        ran = fence.run(alice, srv_ip, PORT, COUNT, limit=LIMIT)
        # drops() counts every rule of hoplab's in a router: once per router.
        dropped = sum({loss.node.name: loss.drops() for loss in losses}.values())
    mechanism = "; ".join(loss.mechanism for loss in losses)
    server.stop()
    seen = _requests(server, alice.address())
    yield runtime_check(CHECKS[0], ran)

    want = [f"ACK {n} {_tag(secret, n)}" for n in range(COUNT)]
    lines = [ln.strip() for ln in ran.out.splitlines() if ln.strip()]
    yield check(
        CHECKS[1],
        lines == want,
        f"{COUNT} lines: {want[0]!r} .. {want[-1]!r}",
        f"{len(lines)} lines: "
        + (", ".join(repr(x) for x in lines[:4]) or "none")
        + (" .." if len(lines) > 4 else ""),
        evidence=f"alice: python3 lossy_client.py {srv_ip} {PORT} {COUNT} (stdout)",
        hint="print each reply exactly as it came, one per line, in request order; a reply "
        "that never comes means its request (or the reply) was dropped: resend it",
    )
    got = sorted(set(seen))
    missing = sorted(set(range(COUNT)) - set(seen))
    yield check(
        CHECKS[2],
        not missing and dropped > 0,
        f"requests 0..{COUNT - 1} all reach srv; r1 drops some on the way",
        f"srv got {len(got)} distinct requests (missing {missing or 'none'}); r1 dropped {dropped}",
        evidence=f"srv: grade_udp_server.py log (requests from alice); {mechanism}",
        hint="set a timeout (sock.settimeout(0.5)); on socket.timeout send the same request "
        "again, a few times, before giving up",
    )
    budget = COUNT + SLACK
    yield check(
        CHECKS[3],
        0 < len(seen) <= budget,
        f"at most {budget} requests reach srv ({COUNT} + {SLACK} spare resends)",
        f"{len(seen)} requests reached srv, {dropped} more were dropped by r1",
        evidence=f"srv: grade_udp_server.py log (requests from alice); {mechanism}",
        hint="resend a request only when its reply did not come in time; a very short timeout "
        "(or sending every request several times) floods the server",
    )


def _requests(server: Proc, client: str) -> list[int]:
    """Every request number the reference server logged from client, duplicates included."""
    out = []
    for line in server.output().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "req" in entry and entry.get("peer", [""])[0] == client:
            out.append(int(entry["req"]))
    return out


def _tag(secret: str, n: int) -> str:
    """The reply tag, as grade_udp_server.py makes it: a client cannot guess it."""
    return hashlib.sha256(f"{secret}:{n}".encode()).hexdigest()[:8]


ASSIGNMENT = Assignment(
    name="lossy-client",
    exercise="tcp-recovers-loss",
    summary="A UDP client that gets every answer although a router drops its requests.",
    program="lossy_client.py",
    usage=f"python3 lossy_client.py HOST PORT COUNT   (on alice: PORT {PORT}, COUNT {COUNT})",
    checks=CHECKS,
    grade=grade,
)
