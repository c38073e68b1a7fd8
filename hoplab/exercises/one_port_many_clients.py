"""one-port-many-clients: one listening port serves many clients; the 4-tuple tells them apart."""

from __future__ import annotations

import json
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from hoplab.checks import Check, check, env
from hoplab.errors import HoplabError
from hoplab.exercises.base import Cast, Exercise
from hoplab.exercises.hop_limit import address6
from hoplab.runtime.evidence import ss_tuples
from hoplab.runtime.needs import Host, around

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab, Node

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

Then the same port serves the web, to both address families at once: one HTTP server on srv's
port 80, a single [::] socket with IPV6_V6ONLY off, and seven users fetching a page at the same
moment, four over IPv4 (two from alice, bob, carol) and three over IPv6 (alice, bob, carol).
Each page names the user's own address and port as the server saw it, and the path it asked
for. An IPv4 user shows up as an IPv4-mapped address (::ffff:10.77.1.10): the kernel hands the
[::] socket IPv4 connections too. One port, one listening socket, two families, and each user
still gets an answer of its own. On a lab without IPv6 the server binds srv's IPv4 address and
the IPv6 half reports ENV.

Evidence: the (ip, port) peers that accept() returned with the local address of each, the
`ss -tn` table on srv while all three were open, what each client got back, and each HTTP
user's family, status, local address and page.
"""

NEEDS = around(Host("server", prefer="srv"), "alice", "carol", "bob")
PORT = 80
# The web server on srv: every page says who asked (the peer of its connection) and for what.
# argv: ADDRESS PORT REQUESTS. ADDRESS "::" is one dual-stack socket (IPV6_V6ONLY off: IPv4 peers
# arrive as ::ffff:a.b.c.d). Threads, so the users are served side by side; it stops after
# REQUESTS requests (or 15 s without one) once every page is written.
HTTP_SERVER = r"""
import http.server, json, socket, sys
class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path, "peer": list(self.client_address[:2])}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    daemon_threads = False  # server_close() then waits for every page to be written
    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
srv = Server((sys.argv[1], int(sys.argv[2])), Page)
srv.timeout = 15
print("listening", flush=True)
for _ in range(int(sys.argv[3])):
    srv.handle_request()
srv.server_close()
"""
# A user: GET /TOKEN over a connection whose local address it reports. argv: HOST PORT TOKEN
HTTP_USER = r"""
import http.client, json, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=10)
try:
    c.connect()
    local = list(c.sock.getsockname()[:2])
    c.request("GET", "/" + sys.argv[3])
    r = c.getresponse()
    print(json.dumps({"status": r.status, "local": local, "page": json.loads(r.read())}))
except OSError as e:
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
"""


def _ep(addr: list | tuple | None) -> str:
    return f"{addr[0]}:{addr[1]}" if addr else "?"


def run(lab: Lab, cast: Cast) -> list[Check]:
    # Set up: the server on srv's lan2 address; two clients two routers away, one on the same LAN.
    srv, far, near = cast["server"], cast["client"], cast["neighbour"]
    srv_ip = srv.address()
    clients = [far, far, near]
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

    http = _http_checks(lab, srv, srv_ip, [far, far, cast["other"], near])

    # Check.
    return [
        check(
            "accept() gives three distinct peers on one local address",
            len(set(peers)) == 3 and set(peers) == set(dialled) and locals_ == {(srv_ip, PORT)},
            f"3 distinct peers {', '.join(_ep(d) for d in dialled)} "
            f"({far.name} via {where[far.name]}, {near.name} {where[near.name]}), "
            f"each with local {srv_ip}:{PORT}",
            "; ".join(f"{_ep(a['peer'])} -> local {_ep(a['local'])}" for a in served)
            or "no connection accepted",
            evidence=f"{srv.name}: tcp_server.py many (accept(), getsockname()); clients: "
            "tcp_client.py",
            hint="a client that could not connect shows its errno in the expected list; check "
            f"the routes to {srv.name}'s address {srv_ip}. A peer address other than the client's "
            "means "
            "something rewrote it on the way (NAT).",
        ),
        check(
            f"ss on {srv.name} shows the three 4-tuples side by side",
            want_tuples <= seen_tuples,
            "; ".join(f"{loc} <-> {peer}" for loc, peer in sorted(want_tuples)),
            "; ".join(f"{loc} <-> {peer}" for loc, peer in sorted(seen_tuples)) or "none",
            evidence=f"{srv.name}: `ss -tnH` while the server held every connection open",
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
        *http,
    ]


def _ep6(ip: str | None, port: object) -> str:
    return f"[{ip}]:{port}" if ip and ":" in ip else f"{ip}:{port}"


def _http_checks(lab: Lab, srv: Node, srv_ip: str, users4: list[Node]) -> list[Check]:
    """Port 80 serving many users over both families: each fetches a page at once from one
    server, and each page must be its own. The IPv6 half is ENV on a lab without IPv6."""
    srv6 = address6(srv, lab.network_of(srv_ip))
    users6 = list(dict.fromkeys(users4))  # each user once
    own6 = {n.name: address6(n, lab.network_of(n.address())) for n in users6}
    dual = srv6 is not None and None not in own6.values()
    # (node, family, server address dialled, the address the server should see for it)
    users: list[tuple[Node, str, str | None, str | None]] = [
        (n, "IPv4", srv_ip, f"::ffff:{n.address()}" if dual else n.address()) for n in users4
    ]
    if dual:
        users += [(n, "IPv6", srv6, own6[n.name]) for n in users6]
    tokens = [
        f"{n.name}-{fam[-2:]}-{i}-{secrets.token_hex(6)}" for i, (n, fam, _, _) in enumerate(users)
    ]
    bind = "::" if dual else srv_ip
    server = srv.start(
        ["python3", "-c", HTTP_SERVER, bind, str(PORT), str(len(users))], ready="listening"
    )
    try:
        with ThreadPoolExecutor(len(users)) as workers:
            done = workers.map(
                lambda u: u[0][0].run(["python3", "-c", HTTP_USER, u[0][2], str(PORT), u[1]]),
                zip(users, tokens, strict=True),
            )
            results = list(done)
        server.wait(5)
    finally:
        server.stop()
    got = []
    for res in results:
        try:
            got.append(res.json())
        except HoplabError:  # a user that printed nothing is evidence too
            got.append({"error": (res.out + res.err).strip()[-200:] or f"exit {res.code}"})

    def family(fam: str) -> tuple[bool, str, str]:
        want, seen, ok = [], [], True
        for (n, f, dialled, peer), tok, g in zip(users, tokens, got, strict=True):
            if f != fam:
                continue
            own = [peer, g.get("local", [None, None])[1]]
            want.append(f"{n.name} -> {_ep6(dialled, PORT)} gets 200 /{tok} for {_ep6(*own)}")
            page = g.get("page", {})
            ok &= g.get("status") == 200 and page == {"path": f"/{tok}", "peer": own}
            seen.append(f"{n.name} got {g.get('status', '')} {json.dumps(page or g.get('error'))}")
        return ok, "; ".join(want), "; ".join(seen)

    server_says = f"{srv.name}: one python http.server (threads) on {_ep6(bind, PORT)}"
    if dual:
        server_says += " (IPV6_V6ONLY off, so IPv4 peers show as ::ffff:a.b.c.d)"
    ok4, want4, seen4 = family("IPv4")
    checks = [
        check(
            "HTTP on port 80: every user at once gets a page of its own",
            ok4,
            want4,
            seen4,
            evidence=f"{server_says}; users: http.client GET /TOKEN over IPv4",
            hint="each response must be written to the connection its request came on; a page "
            "naming another user's address or path is an answer sent to the wrong socket",
        )
    ]
    if not dual:
        checks.append(
            env(
                "HTTP on port 80 over IPv6: the same server gives each user its own page",
                f"IPv6 addresses on {srv.name} and on {', '.join(n.name for n in users6)}",
                f"{srv.name} {srv6}, " + ", ".join(f"{k} {v}" for k, v in own6.items()),
                "this lab has no IPv6 there: run it on a dual-stack lab such as the default "
                "one (compose.yaml)",
            )
        )
        return checks
    ok6, want6, seen6 = family("IPv6")
    checks.append(
        check(
            "HTTP on port 80 over IPv6: the same server gives each user its own page",
            ok6,
            want6,
            seen6,
            evidence=f"{server_says}; users: http.client GET /TOKEN over IPv6, at the same "
            "moment as the IPv4 users",
            hint=f"a user with an error did not get through over IPv6 (its route to {srv.name}'s "
            "IPv6 "
            f"LAN, or {srv.name}'s way back); a page naming another user's address or path is an "
            "answer sent to the wrong socket",
        )
    )
    return checks


EXERCISE = Exercise(
    name="one-port-many-clients",
    summary="Three clients share srv's port 80 at once, and seven users over IPv4 and IPv6 each "
    "get their own web page from it; the 4-tuple keeps them apart.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
