"""port-opens-on-listen: a TCP port takes connections only once the server calls listen()."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.exercises.base import Cast, Exercise
from hoplab.runtime.needs import client_server

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab
    from hoplab.runtime.pcap import Frame

LESSON = """\
A server opens a TCP port in three steps: socket() makes an endpoint with no address, bind()
gives it an address and port, and listen() tells the kernel to take connections for it. Only
the last step opens the port. Until then a SYN to that port finds no listening socket, and the
server's kernel answers it with a reset (RST). The client's connect() then fails with
ECONNREFUSED ("connection refused").

That answer comes from the server host itself, not from a router on the way: a plain router
such as r1 or r2 forwards the SYN by its IP destination, and only the destination knows whether
anything listens. (Routers can read ports: one that filters, tracks connections or does NAT
does, as the nat exercise shows, and a firewall may even answer a SYN with a RST of its own.)
hoplab shows this from alice, two routers away. It captures on srv's LAN, where the RST leaves
with srv's IP address and srv's own MAC address.

Evidence: connect() from alice at each step (before bind, after bind, after listen), the RSTs
captured on srv's lan2 interface (srv-lan2.pcap), and `ss -ltn` on srv, which lists the port
only once listen() has run.
"""

PORT = 8088


def _listed(ss_out: str, port: int) -> list[str]:
    """Local addresses in `ss -ltnH` output that listen on port."""
    rows = [line.split() for line in ss_out.splitlines()]
    return [p[3] for p in rows if len(p) >= 5 and p[3].rsplit(":", 1)[-1] == str(port)]


def _rsts(frames: list[Frame], client_port: int) -> list[Frame]:
    return [f for f in frames if "R" in f.tcp_flags and f.dport == client_port]


def _who(frames: list[Frame]) -> str:
    return "; ".join(f"RST from {f.src_ip} ({f.src_mac})" for f in frames) or "no RST seen"


NEEDS = client_server("alice", "srv")


def run(lab: Lab, cast: Cast) -> list[Check]:
    # Set up: srv makes a socket and waits; alice is two routers away (read, not assumed).
    srv, cli = cast["server"], cast["client"]
    srv_ip = srv.address()
    lan = lab.network_of(srv_ip)
    srv_mac = srv.iface(lan).mac
    routers = " -> ".join(r.name for r, _ in lab.path(cli.name, srv_ip)) or "none"
    server = srv.start_py("tcp_stages.py", srv_ip, PORT, ready="created")

    # Run: try to connect at each step, capturing on srv's LAN.
    with lab.capture(srv.name, lan, bpf=f"tcp port {PORT}", label=f"{srv.name}-{lan}") as cap:
        before = cli.py("tcp_client.py", "connect", srv_ip, PORT).json()
        bound_ss = server.handshake("ss -ltnH", wait_for='"bound"', signal_before=True).out
        bound = cli.py("tcp_client.py", "connect", srv_ip, PORT).json()
        listen_ss = server.handshake("ss -ltnH", wait_for='"listening"', signal_before=True).out
        after = cli.py("tcp_client.py", "connect", srv_ip, PORT).json()
        server.wait(5)
    accepted = server.json()

    # Check.
    def from_srv(attempt: dict) -> bool:
        rsts = _rsts(cap.frames, attempt["local_port"])
        return bool(rsts) and all(f.src_ip == srv_ip and f.src_mac == srv_mac for f in rsts)

    rst_hint = (
        f"no RST on {srv.name}'s LAN means something on the way answered (a router REJECT rule) or "
        "dropped the SYN; an RST with another MAC was sent by a different box"
    )
    evidence = (
        f"{srv.name}-{lan}.pcap (capture on {srv.name}'s {lan} interface); "
        f"{cli.name} crosses {routers}"
    )
    peer = accepted.get("peer") or []
    return [
        check(
            "connect before bind() is refused",
            before["result"] == "ECONNREFUSED",
            "ECONNREFUSED",
            before["result"],
            evidence=f"{cli.name}: tcp_client.py connect",
            hint="TIMEOUT means the SYN or the RST was lost on the way; ok means something "
            f"else already listens on {srv.name} port {PORT}",
        ),
        check(
            f"its RST comes from {srv.name} itself, not a router",
            from_srv(before),
            f"RST from {srv_ip} ({srv_mac})",
            _who(_rsts(cap.frames, before["local_port"])),
            evidence=evidence,
            hint=rst_hint,
        ),
        check(
            "connect after bind() without listen() is refused",
            bound["result"] == "ECONNREFUSED" and not _listed(bound_ss, PORT),
            f"ECONNREFUSED, and ss -ltn does not list :{PORT}",
            f"{bound['result']}, ss -ltn lists {', '.join(_listed(bound_ss, PORT)) or 'nothing'}",
            evidence=f"{cli.name}: tcp_client.py connect; {srv.name}: ss -ltnH after bind()",
            hint="a bound socket is not yet open: only listen() makes the kernel accept SYNs",
        ),
        check(
            f"that RST also comes from {srv.name}",
            from_srv(bound),
            f"RST from {srv_ip} ({srv_mac})",
            _who(_rsts(cap.frames, bound["local_port"])),
            evidence=evidence,
            hint=rst_hint,
        ),
        check(
            "after listen() the connect succeeds and ss -ltn lists the port",
            after["result"] == "ok"
            and f"{srv_ip}:{PORT}" in _listed(listen_ss, PORT)
            and peer == [cli.address(), after["local_port"]],
            f"ok, accepted peer {cli.address()}:{after['local_port']}, "
            f"ss -ltn lists {srv_ip}:{PORT}",
            f"{after['result']}, accepted peer "
            f"{':'.join(map(str, peer)) or accepted.get('error', 'none')}, "
            f"ss -ltn lists {', '.join(_listed(listen_ss, PORT)) or 'nothing'}",
            evidence=f"{cli.name}: tcp_client.py connect; {srv.name}: tcp_stages.py, ss -ltnH "
            "after listen()",
            hint=f"check the routes between {cli.name} and {srv.name} and any filter on the way",
        ),
    ]


EXERCISE = Exercise(
    name="port-opens-on-listen",
    summary="A port is refused by the server host until listen(); bind() alone does not open it.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
