"""nat: masquerade on a router hides the clients behind it; the server sees the router."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from hoplab.checks import Check, check
from hoplab.exercises.base import Cast, Exercise
from hoplab.runtime.needs import Host, Masquerade, SameLan, client_server

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab, Node

LESSON = """\
Without NAT, a server knows each client by the client's own address: the source address of the
packets is the address the client's socket is bound to, and routers leave it alone.

Masquerade (source NAT) on a router changes that. As a connection leaves through the router's
outside interface, the router rewrites the source address to its own address on that side, and
the source port too when needed, so that every connection through it is still a distinct
4-tuple. It writes the mapping down in its connection-tracking table and undoes the rewrite on
the replies. The clients never notice: their sockets still carry their own addresses. The
server sees one address, the router's, with a different port per connection.

Evidence: the same two clients, alice and bob (both behind r1), connect to srv at the same time,
first without NAT and then with `iptables -t nat -A POSTROUTING -o <r1's core interface> -j
MASQUERADE` on r1. Compare what srv's accept() returned with what each client's getsockname()
says, and read r1's conntrack entries for the translation. (one-port-many-clients shows the
no-NAT side at larger scale.)
"""

PORT = 9184
TIMEOUT = 3  # seconds; the connections take milliseconds
# How long the server waits for both clients, and a client for its reply: that spans the other
# client's exec, seconds on a loaded engine (half-close's 3 s accept failed 16 of 22 at load 30).
ACCEPT_WAIT = 60
CLIENTS = ("client", "neighbour")  # roles: two hosts on one LAN behind the same router
NEEDS = (
    *client_server("alice", "srv", routers=1),
    Host("neighbour", prefer="bob"),
    SameLan("neighbour", "client"),
    Masquerade("client", "server"),
)
CONNTRACK = re.compile(
    r"src=(?P<src>\S+) dst=\S+ sport=(?P<sport>\d+) dport=\d+ .*?"
    r"src=\S+ dst=(?P<rdst>\S+) sport=\d+ dport=(?P<rdport>\d+)"
)


def connect_all(lab: Lab, srv: Node, srv_ip: str, clients: tuple[str, ...]) -> dict[str, Any]:
    """Both clients connect and stay connected until srv has accepted both; who did srv see?"""
    server = srv.start_py(
        "hop_nat.py", "serve", PORT, len(clients), TIMEOUT, ACCEPT_WAIT, ready="listening"
    )
    procs = {
        name: lab.node(name).start_py(
            "hop_nat.py", "client", srv_ip, PORT, name, TIMEOUT, ACCEPT_WAIT, ready='"connected"'
        )
        for name in clients
    }
    for proc in procs.values():
        proc.wait(TIMEOUT)
    server.wait(TIMEOUT)
    seen = server.json()
    return {
        "server": {p.get("name"): tuple(p["peer"]) for p in seen.get("peers", [])},
        "error": seen.get("error"),
        "clients": {name: proc.json() for name, proc in procs.items()},
    }


def forget_flows(router: Node) -> None:
    """Drop the router's conntrack entries for this exercise's port (none is fine)."""
    router.run(["conntrack", "-D", "-p", "tcp", "--dport", str(PORT)])


def show(run: dict[str, Any], clients: tuple[str, ...]) -> str:
    seen = run["server"]
    text = ", ".join(
        f"{name} as {':'.join(map(str, seen[name]))}" if name in seen else f"{name} not seen"
        for name in clients
    )
    return text + (f" ({run['error']})" if run["error"] else "")


def run(lab: Lab, cast: Cast) -> list[Check]:
    # Set up: alice and bob sit behind r1 (their first hop towards srv, read from the lab).
    srv = cast["server"]
    srv_ip = srv.address()
    clients = tuple(cast[role].name for role in CLIENTS)
    router = lab.path(clients[0], srv_ip)[0][0]
    # The outside network: towards r1's next hop, or srv's own LAN when r1 sits on it.
    beyond = lab.path(router.name, srv_ip)
    out_net = lab.network_of(beyond[0][1] if beyond else srv_ip)
    router_ip = router.iface(out_net).address
    own = {name: lab.address(name) for name in clients}
    rule = ["POSTROUTING", "-o", router.iface(out_net).name, "-j", "MASQUERADE"]

    # Run: first plain routing, then the same with masquerade on the router.
    forget_flows(router)
    plain = connect_all(lab, srv, srv_ip, clients)
    forget_flows(router)
    added = router.run(["iptables", "-t", "nat", "-A", *rule])
    inside = lab.network_of(lab.path(clients[0], srv_ip)[0][1])
    try:
        # Captured on both sides of the router, so the report's ladder shows each rewrite.
        with (
            lab.capture(router.name, inside, f"tcp port {PORT}", f"nat-{inside}-inside"),
            lab.capture(router.name, out_net, f"tcp port {PORT}", f"nat-{out_net}-outside"),
        ):
            natted = connect_all(lab, srv, srv_ip, clients)
        table = router.run(["conntrack", "-L", "-p", "tcp", "--dport", str(PORT)]).out
    finally:
        if added.ok:
            router.run(["iptables", "-t", "nat", "-D", *rule])
        forget_flows(router)

    # Collect: the translations r1 wrote down, keyed by the client's own (ip, port).
    mapping = {
        (m["src"], int(m["sport"])): (m["rdst"], int(m["rdport"]))
        for m in CONNTRACK.finditer(table)
    }
    locals_ = {n: tuple(c.get("local") or ()) for n, c in natted["clients"].items()}
    seen_nat = natted["server"]
    replies_ok = all(
        c.get("reply", {}).get("name") == n
        and tuple(c.get("reply", {}).get("you_are", ())) == seen_nat.get(n)
        for n, c in natted["clients"].items()
    )

    # Check.
    return [
        check(
            f"without NAT, {srv.name} sees each client by its own address",
            {n: p[0] for n, p in plain["server"].items()} == own,
            ", ".join(f"{n} as {ip}" for n, ip in own.items()),
            show(plain, clients),
            evidence=f"{srv.name}: hop_nat.py serve (accept() peers), no NAT rule",
            hint="a client missing: the path is broken; another address: something already "
            "translates on the way (a NAT rule left on a router?)",
        ),
        check(
            f"with masquerade on {router.name}, {srv.name} sees both clients as {router.name}",
            len(seen_nat) == len(clients) and all(p[0] == router_ip for p in seen_nat.values()),
            f"{', '.join(clients)} all as {router_ip} ({router.name} on {out_net})",
            show(natted, clients),
            evidence=f"{srv.name}: hop_nat.py serve; {router.name}: iptables -t nat "
            + " ".join(["-A", *rule]),
            hint="the clients' own addresses: the MASQUERADE rule did not apply (wrong "
            "interface, or a rule before it in POSTROUTING accepts the packets first)"
            + ("" if added.ok else f"; adding the rule failed: {added.err.strip()}"),
        ),
        check(
            "their connections stay apart by source port",
            len(seen_nat) == len(clients)
            and len({p[1] for p in seen_nat.values()}) == len(clients),
            f"{len(clients)} distinct ports on {router_ip}",
            ", ".join(sorted(str(p[1]) for p in seen_nat.values())) or "no connections",
            evidence=f"{srv.name}: hop_nat.py serve",
            hint="one address, so only the port can tell the connections apart; the "
            "router picks a new one when two clients' ports collide",
        ),
        check(
            "the clients still see their own addresses, and each gets its own answer",
            all(locals_[n][:1] == (own[n],) for n in clients) and replies_ok,
            "getsockname() = each client's own address; reply names the client and the "
            f"address {srv.name} saw",
            ", ".join(
                f"{n} is {':'.join(map(str, locals_[n])) or '?'}, told it was "
                f"{':'.join(map(str, c.get('reply', {}).get('you_are', []))) or '?'}"
                for n, c in natted["clients"].items()
            ),
            evidence=f"{', '.join(clients)}: hop_nat.py client",
            hint="the rewrite happens in the router, not in the client's socket; a wrong "
            "reply means the router mixed up the return translations",
        ),
        check(
            f"{router.name}'s conntrack table maps each client to {router.name}'s address",
            all(
                mapping.get(locals_[n]) == (router_ip, seen_nat.get(n, (0, 0))[1]) for n in clients
            ),
            "; ".join(
                f"{':'.join(map(str, locals_[n]))} -> {router_ip}:{seen_nat.get(n, ('', '?'))[1]}"
                for n in clients
            ),
            "; ".join(f"{s}:{p} -> {d}:{dp}" for (s, p), (d, dp) in mapping.items())
            or "no entries",
            evidence=f"{router.name}: conntrack -L -p tcp --dport {PORT}",
            hint="no entry, or one that maps a client to itself: the router did not "
            "translate this connection",
        ),
    ]


EXERCISE = Exercise(
    name="nat",
    summary="Masquerade on a router: the server sees two clients as the router, apart by port.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
