"""bind-scope: the address a server binds decides which of the host's addresses answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.exercises.base import Cast, Exercise
from hoplab.runtime.evidence import reach_matrix, show_matrix
from hoplab.runtime.needs import Host, around

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab

LESSON = """\
A host can have several addresses, and a server chooses which of them it listens on when it
binds. srv has one address on lan2 and one on lan3, plus 127.0.0.1 on its loopback interface.

  - Bound to 127.0.0.1, the server is reachable only from inside srv: loopback never leaves the
    host, and a connection to any other address of srv is refused.
  - Bound to one LAN address, only that address answers. A client dialling srv's other address
    reaches the host (the route is fine) and gets a refusal: no socket is bound there.
  - Bound to 0.0.0.0, every address answers. The accepted socket is still bound to one concrete
    address: getsockname() on it shows the address the client dialled.

Evidence: a reachability matrix built with real connect() calls from alice (lan1, two routers
away), carol (lan2), dave (lan3) and from srv itself, to each of srv's addresses, for each bind.
A refusal is the RST from srv; a timeout would mean the packet never got there.
"""

PORT = 5100
CONNECT_TIMEOUT = 1.0  # refusals come back at once; a timeout is already a failure
CLIENTS = ("client", "neighbour", "other")
NEEDS = around(Host("server", prefer="srv", homes=2), "alice", "carol", "dave")


def run(lab: Lab, cast: Cast) -> list[Check]:
    # Set up: srv's first two addresses, read from the lab (subnets are remapped in tests).
    srv = cast["server"]
    one, two = list(lab.state_node(srv.name).addresses)[:2]
    targets = {one: srv.address(one), two: srv.address(two), "lo": "127.0.0.1"}
    clients = [cast[c].name for c in CLIENTS]
    where = ", ".join(f"{k}={v}" for k, v in targets.items())
    binds = [("127.0.0.1", {"lo"}), (targets[one], {one}), (targets[two], {two}),
             ("0.0.0.0", {one, two, "lo"})]  # fmt: skip

    # Run: one server per bind address; every client dials every address it may dial.
    matrices = {}
    for addr, _ in binds:
        server = srv.start_py("sock_scope.py", "serve", addr, PORT, ready="listening")
        try:
            matrices[addr] = reach_matrix(
                lab, targets, PORT, clients, srv.name, timeout=CONNECT_TIMEOUT
            )
        finally:
            server.stop()

    # Check: each bind against the cells it should open; then getsockname() under 0.0.0.0.
    checks = []
    for addr, answers in binds:
        seen = matrices[addr]
        expected = {k: "answered" if k[1] in answers else "refused" for k in seen}
        observed = {k: row["result"] for k, row in seen.items()}
        scope = {"127.0.0.1": f"only from inside {srv.name}", "0.0.0.0": "on every address"}.get(
            addr, "only on that address"
        )
        checks.append(
            check(
                f"bound to {addr}: reachable {scope}",
                observed == expected,
                show_matrix(expected),
                show_matrix(observed),
                evidence=f"sock_scope.py dial from {', '.join(clients)}, {srv.name}; "
                f"{srv.name}: {where}",
                hint="'timeout' or EHOSTUNREACH means the packet never reached srv (routes: "
                "`hoplab status`); 'answered' where 'refused' was expected means the server "
                "bound a wider address than it was asked to",
            )
        )
    wild = matrices["0.0.0.0"]
    dialled = {
        k: (row["dialled"], (row.get("server_local") or ["-"])[0]) for k, row in wild.items()
    }
    checks.append(
        check(
            "bound to 0.0.0.0: getsockname() on the accepted socket is the address dialled",
            all(d == s for d, s in dialled.values()),
            "each connection's local address equals the address its client dialled",
            "; ".join(
                f"{c} dialled {d} -> {srv.name} local {s}" for (c, _), (d, s) in dialled.items()
            ),
            evidence=f"{srv.name}: sock_scope.py serve 0.0.0.0 (getsockname() sent back to each "
            "client)",
            hint="'-' means that connection was not accepted; a different address means the "
            "reply came from a socket bound elsewhere",
        )
    )
    return checks


EXERCISE = Exercise(
    name="bind-scope",
    summary="127.0.0.1 answers only inside srv, one LAN address only there, 0.0.0.0 everywhere.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
