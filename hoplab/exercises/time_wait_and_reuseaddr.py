"""time-wait-and-reuseaddr: the side that closes first keeps TIME_WAIT; SO_REUSEADDR rebinds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.errors import HoplabError
from hoplab.exercises.base import Cast, Exercise
from hoplab.runtime.needs import client_server

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab, Node

LESSON = """\
Closing a TCP connection takes a FIN from each side. The side that sends its FIN first (the
active closer) does not forget the connection at once: it keeps it in TIME_WAIT for a while
(60 s on Linux). During that time a stray, late segment of the old connection cannot be taken
for part of a new one with the same 4-tuple. The side that closes second just goes away.

So it matters who closes first. hoplab opens two connections from alice to a server on srv.
On the first one the client closes first, and TIME_WAIT shows up on alice. On the second one
the server closes first, and TIME_WAIT shows up on srv, holding srv's port.

That is why a restarted server can fail to bind its port: bind() without SO_REUSEADDR gives
EADDRINUSE for as long as a TIME_WAIT connection still holds the port, even though nothing
listens on it any more. With SO_REUSEADDR set (by the old server and by the new one; the
TIME_WAIT connection remembers whether the old one had it) the bind succeeds. SO_REUSEADDR
still never lets two TCP sockets listen on the same address and port: that takes SO_REUSEPORT,
set by the same user on both, which is made to spread one port's connections over several
listening sockets.

Evidence: `ss -tan` on alice and on srv after both connections are closed, and the result of
bind() on srv without and with SO_REUSEADDR. Each run uses a port that no socket on srv holds
yet, so TIME_WAIT left over from an earlier run cannot change the result.
"""

PORTS = range(9300, 9400)
TRANSIENT = "SYN|ESTAB|FIN-WAIT|CLOSE-WAIT|LAST-ACK|CLOSING"

NEEDS = client_server("alice", "srv")


def _fresh_port(node: Node) -> int:
    """The first port in PORTS that no socket on node uses, TIME_WAIT included."""
    rows = (line.split() for line in node.run(["ss", "-tanH"]).out.splitlines())
    used = {p[3].rsplit(":", 1)[-1] for p in rows if len(p) >= 5}
    for port in PORTS:
        if str(port) not in used:
            return port
    raise HoplabError(f"every port in {PORTS.start}-{PORTS.stop - 1} is in use on {node.name}")


def _settled(node: Node, port: int, cap: float = 3) -> list[tuple[str, str, str]]:
    """(state, local, peer) of node's TCP sockets on port, once none is half-way through a
    close (a bounded wait in the node)."""
    sel = f"'( sport = :{port} or dport = :{port} )'"
    script = (
        f"i=0; while ss -tanH {sel} | grep -qE '{TRANSIENT}'; do "
        f"[ $i -ge {int(cap * 100)} ] && break; sleep 0.01; i=$((i+1)); done; ss -tanH {sel}"
    )
    rows = (line.split() for line in node.run(["sh", "-c", script]).out.splitlines())
    return [(p[0], p[3], p[4]) for p in rows if len(p) >= 5]


def _state(table: list[tuple[str, str, str]], local: str, peer: str) -> str:
    return next((s for s, loc, rem in table if loc == local and rem == peer), "gone")


def run(lab: Lab, cast: Cast) -> list[Check]:
    # Set up: a server on a port nothing on srv holds yet; the client is alice.
    srv, cli = cast["server"], cast["client"]
    srv_ip = srv.address()
    port = _fresh_port(srv)
    server = srv.start_py("tcp_timewait.py", "serve", srv_ip, port, ready="listening")

    # Run: the client closes first on one connection, the server on the other.
    conns = cli.py("tcp_timewait.py", "clients", srv_ip, port).json()
    server.wait(5)

    # Collect evidence: both socket tables once the closes are done, then srv binds again.
    srv_table, cli_table = _settled(srv, port), _settled(cli, port)
    rebind = srv.py("tcp_timewait.py", "rebind", srv_ip, port).json()

    here = f"{srv_ip}:{port}"
    seen, ok = [], True
    for first in ("client", "server"):
        if first not in conns["local"]:
            seen.append(f"{first} closes first: {conns['errors'].get(first, 'no connection')}")
            ok = False
            continue
        there = f"{conns['local'][first][0]}:{conns['local'][first][1]}"
        on_cli, on_srv = _state(cli_table, there, here), _state(srv_table, here, there)
        seen.append(f"{first} closes first: {cli.name} {on_cli}, {srv.name} {on_srv}")
        holder = (on_cli, on_srv) if first == "client" else (on_srv, on_cli)
        ok = ok and holder == ("TIME-WAIT", "gone")
    held = [f"{s} {loc} <-> {peer}" for s, loc, peer in srv_table if loc == here]
    only_tw = bool(held) and all(h.startswith("TIME-WAIT") for h in held)

    # Check.
    return [
        check(
            "the side that closes first holds TIME_WAIT",
            ok,
            f"client closes first: {cli.name} TIME-WAIT, {srv.name} gone; "
            f"server closes first: {cli.name} gone, {srv.name} TIME-WAIT",
            "; ".join(seen),
            evidence=f"`ss -tan` on {cli.name} and {srv.name} for port {port}, after both closes",
            hint="a connection ended by RST (SO_LINGER 0) leaves no TIME_WAIT anywhere; a side "
            "stuck in FIN-WAIT-2 or LAST-ACK never got the other side's FIN or ACK",
        ),
        check(
            "bind() without SO_REUSEADDR fails while TIME_WAIT holds the port",
            rebind["without"] == "EADDRINUSE" and only_tw,
            f"EADDRINUSE, with only TIME-WAIT on {here} (no listener)",
            f"{rebind['without']}; {srv.name} holds {'; '.join(held) or 'nothing'}",
            evidence=f"{srv.name}: tcp_timewait.py rebind {here}",
            hint="if the bind worked, no TIME_WAIT held the port: check that the server "
            "closed first; a LISTEN row means the old server still runs",
        ),
        check(
            "bind() with SO_REUSEADDR succeeds over TIME_WAIT",
            rebind["with"] == "ok" and only_tw,
            f"ok (bind and listen), with TIME-WAIT on {here}",
            f"{rebind['with']}; {srv.name} holds {'; '.join(held) or 'nothing'}",
            evidence=f"{srv.name}: tcp_timewait.py rebind {here}",
            hint="SO_REUSEADDR must be set before bind(), and the old server must have set it "
            "too: the TIME_WAIT connection inherits the old listener's setting",
        ),
    ]


EXERCISE = Exercise(
    name="time-wait-and-reuseaddr",
    summary="The first side to close keeps TIME_WAIT; SO_REUSEADDR lets a server rebind.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
