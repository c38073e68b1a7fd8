"""multihomed-bind: a server on multi-homed srv that listens only on its address in one subnet.

Built on bind-scope: the same reachability matrix (alice, carol, dave and srv itself dial each of
srv's addresses), the same protocol (sock_scope.py's JSON line), and its getsockname() check.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.grading.base import Assignment, cast
from hoplab.runtime.evidence import reach_matrix, show_matrix
from hoplab.runtime.needs import Host, around

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.grading.sandbox import Fence
    from hoplab.runtime.lab import Lab, Node

PORT = 5100  # bind-scope's port: the same matrix, the same sock_scope.py peers
CLIENTS = ("client", "neighbour", "other")  # roles, as in bind-scope
NEEDS = around(Host("server", prefer="srv", homes=2), "alice", "carol", "dave")

CHECKS = (
    f"starts and listens on port {PORT}",
    "given lan3's subnet: only srv's lan3 address answers",
    "each reply names the address the client dialled (getsockname)",
    "given lan2's subnet: only srv's lan2 address answers",
)


def _scope(
    lab: Lab, fence: Fence, roles: dict[str, Node], net: str, name: str, start_name: str
) -> Iterator[Check]:
    srv = roles["server"]
    one, two = list(lab.state_node(srv.name).addresses)[:2]
    targets = {one: srv.address(one), two: srv.address(two), "lo": "127.0.0.1"}
    server = fence.serve(srv, lab.subnet(net), PORT, listen=f"tcp {PORT}", name=start_name)
    if start_name == CHECKS[0]:
        yield fence.started(start_name, server)
    seen = reach_matrix(lab, targets, PORT, [roles[r].name for r in CLIENTS], srv.name)
    exited = server.status()
    fence.stop(server)
    expected = {k: "answered" if k[1] == net else "refused" for k in seen}
    observed = {k: row["result"] for k, row in seen.items()}
    yield check(
        name,
        observed == expected,
        show_matrix(expected),
        show_matrix(observed) + exited,
        evidence=f"sock_scope.py dial from alice, carol, dave, srv; srv: "
        f"{', '.join(f'{k}={v}' for k, v in targets.items())}; argument {lab.subnet(net)}",
        hint="'answered' everywhere: you bound 0.0.0.0; bind the one address of this host "
        "inside SUBNET (the source address of a UDP socket connect()ed to an address in the "
        "subnet is that address); 'refused' everywhere: the address was wrong",
    )
    if start_name == CHECKS[0]:  # the first scope: srv's second network
        pairs = {
            k: (row["dialled"], (row.get("server_local") or ["-"])[0])
            for k, row in seen.items()
            if row["result"] == "answered"
        }
        yield check(
            CHECKS[2],
            bool(pairs) and all(d == s for d, s in pairs.values()),
            "each answering connection's local address equals the address dialled",
            "; ".join(f"{c} dialled {d} -> local {s}" for (c, _), (d, s) in pairs.items())
            or "no connection answered",
            evidence="the JSON line your server sent: getsockname() of the accepted socket",
            hint="send json.dumps({'local': conn.getsockname(), 'peer': conn.getpeername()}) "
            "plus '\\n' on every accepted connection",
        )


def grade(lab: Lab, fence: Fence) -> Iterator[Check]:
    roles = cast(lab, NEEDS, CHECKS)
    if isinstance(roles, list):
        yield from roles
        return
    one, two = list(lab.state_node(roles["server"].name).addresses)[:2]
    yield from _scope(lab, fence, roles, two, CHECKS[1], CHECKS[0])
    yield from _scope(lab, fence, roles, one, CHECKS[3], CHECKS[3])


ASSIGNMENT = Assignment(
    name="multihomed-bind",
    exercise="bind-scope",
    summary="A server on multi-homed srv bound to its one address in a given subnet.",
    program="multihomed_bind.py",
    usage=f"python3 multihomed_bind.py SUBNET PORT   (graded on srv with PORT {PORT})",
    checks=CHECKS,
    grade=grade,
)
