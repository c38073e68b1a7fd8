"""one-port-many-clients: one listening port serves many clients; the 4-tuple tells them apart."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.exercises.base import Exercise
from hoplab.runtime.evidence import ss_tuples

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.net import Lab

LESSON = """\
A server listens on one port, here port 80 on srv. Every client that connects gets a connection
of its own, and all of them share the server's side of the address: srv's address and port 80.
What tells them apart is the other side: the client's address and the port its kernel picked.
So the kernel files each connection under four numbers, (server ip, server port, client ip,
client port), the 4-tuple. When a segment arrives, its addresses and ports pick the one socket it
belongs to; that is demultiplexing.

hoplab connects three clients at once: two from alice, which is two routers away, and one from
carol, on srv's own LAN. The server accepts all three before it answers anyone, so the three
connections exist side by side. Then every client sends a token of its own and must get back
exactly that token, never another client's.

Evidence: the (ip, port) peers that accept() returned with the local address of each, the
`ss -tn` table on srv while all three were open, and what each client got back.
"""

PORT = 80


def _ep(addr: list | tuple | None) -> str:
    return f"{addr[0]}:{addr[1]}" if addr else "?"


def run(lab: Lab) -> list[Check]:
    # Set up: the server on srv's lan2 address; two clients two routers away, one on the same LAN.
    srv = lab.node("srv")
    srv_ip = lab.address("srv", "lan2")
    clients = [lab.node("alice"), lab.node("alice"), lab.node("carol")]
    where = {
        n.name: " -> ".join(r.name for r, _ in lab.path(n.name, srv_ip)) or "same LAN"
        for n in clients
    }
    tokens = [f"{n.name}-{i}-{secrets.token_hex(6)}" for i, n in enumerate(clients)]
    server = srv.start_py("tcp_server.py", "many", srv_ip, PORT, len(clients), ready="listening")

    # Run: all three connect; the server holds them open while we read srv's socket table.
    procs = [
        n.start_py("tcp_client.py", "token", srv_ip, PORT, tok, ready='"connect"')
        for n, tok in zip(clients, tokens, strict=True)
    ]
    table = server.handshake("ss -tnH", wait_for="holding", signal_after=True).out
    for p in procs:
        p.wait(8)
    server.wait(5)

    # Collect evidence.
    got = [p.json() for p in procs]
    served = server.json().get("accepted", [])  # [] if it never got to answer
    peers = [(a["peer"][0], a["peer"][1]) for a in served]
    locals_ = {(a["local"][0], a["local"][1]) for a in served}
    dialled = [
        (n.address(), g["local"][1]) if g.get("connect") == "ok" else (n.address(), g["connect"])
        for n, g in zip(clients, got, strict=True)
    ]
    want_tuples = {(f"{srv_ip}:{PORT}", f"{ip}:{port}") for ip, port in dialled}
    seen_tuples = ss_tuples(table, PORT)
    replies = [(tok, g.get("got", g.get("connect"))) for tok, g in zip(tokens, got, strict=True)]

    # Check.
    return [
        check(
            "accept() gives three distinct peers on one local address",
            len(set(peers)) == 3 and set(peers) == set(dialled) and locals_ == {(srv_ip, PORT)},
            f"3 distinct peers {', '.join(_ep(d) for d in dialled)} "
            f"(alice via {where['alice']}, carol {where['carol']}), "
            f"each with local {srv_ip}:{PORT}",
            "; ".join(f"{_ep(a['peer'])} -> local {_ep(a['local'])}" for a in served)
            or "no connection accepted",
            evidence="srv: tcp_server.py many (accept(), getsockname()); clients: tcp_client.py",
            hint="a client that could not connect shows its errno in the expected list; check "
            "the routes to srv's lan2 address. A peer address other than the client's means "
            "something rewrote it on the way (NAT).",
        ),
        check(
            "ss on srv shows the three 4-tuples side by side",
            want_tuples <= seen_tuples,
            "; ".join(f"{loc} <-> {peer}" for loc, peer in sorted(want_tuples)),
            "; ".join(f"{loc} <-> {peer}" for loc, peer in sorted(seen_tuples)) or "none",
            evidence="srv: `ss -tnH` while the server held every connection open",
            hint="the server must accept all clients before it answers any, or the "
            "connections do not coexist; a missing row is a client that never connected",
        ),
        check(
            "each client gets back only its own token",
            all(tok == back for tok, back in replies),
            "; ".join(f"{n.name} gets {tok}" for n, tok in zip(clients, tokens, strict=True)),
            "; ".join(
                f"{n.name} got {back!r}" for n, (_, back) in zip(clients, replies, strict=True)
            ),
            evidence="clients: tcp_client.py token (bytes read until the server closed)",
            hint="the reply must go on the connection the token came in on: the socket that "
            "accept() returned for that peer, not the listening socket or another client's",
        ),
    ]


EXERCISE = Exercise(
    name="one-port-many-clients",
    summary="Three clients share srv's port 80 at once; the 4-tuple keeps them apart.",
    lesson=LESSON,
    run=run,
)
