"""stream-vs-datagram: UDP keeps message boundaries, TCP keeps bytes; servers need 1 vs N+1."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.exercises.base import Cast, Exercise
from hoplab.runtime.needs import Host, around

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab, Node

LESSON = """\
UDP (SOCK_DGRAM) carries datagrams: each sendto() becomes one datagram, and each recvfrom()
returns one of them, never two merged; a lost datagram simply never arrives. The buffer must be
large enough: given a shorter one, recvfrom() returns the datagram's first bytes and the kernel
throws the rest away (the MSG_TRUNC flag says so). TCP (SOCK_STREAM) carries a byte stream: it
delivers every byte, in order, or reports that the connection failed, but it does not remember
where one send() ended and the next began. A recv() returns whatever bytes have arrived, so
three sends may come out as one chunk, or as three, or split elsewhere. A protocol on top of
TCP must mark its own message boundaries (a length prefix, a newline).

The two also differ in how a server is built. A UDP server answers everyone from one socket:
recvfrom() tells it who sent each datagram and sendto() replies to that address. A TCP server has
one listening socket, and every accept() creates a new socket for that one connection: with N
clients connected it holds N+1 sockets.

Evidence: alice sends messages of 100, 200 and 300 bytes to srv over UDP and over TCP; srv
reports the size of each datagram and of each recv() chunk. Then alice, carol and dave talk to
srv at once, and each server counts its own sockets (/proc/<pid>/fd) and lists them with `ss -p`.
"""

PORT = 5200  # the boundary test (TCP and UDP share it)
SERVE_PORT = 5201  # the socket-count test
CLIENTS = ("client", "neighbour", "other")  # roles
NEEDS = around(Host("server", prefer="srv"), "alice", "carol", "dave")


def _receive(srv: Node, cli: Node, kind: str, dst_ip: str) -> tuple[dict, dict]:
    """srv receives with `kind`-recv while alice sends the three messages over `kind`."""
    receiver = srv.start_py("sock_stream.py", f"{kind}-recv", PORT, ready="listening")
    sent = cli.py("sock_stream.py", "send", kind, dst_ip, PORT, timeout=10).json()
    receiver.wait(6)  # it exits once the stream ends (TCP) or the end marker arrives (UDP)
    return sent, receiver.json()


def run(lab: Lab, cast: Cast) -> list[Check]:
    # Set up: srv's first address; alice is two routers away, carol and dave on srv's LANs.
    srv, cli = cast["server"], cast["client"]
    clients = [cast[role] for role in CLIENTS]
    dst_ip = srv.address()
    n = len(CLIENTS)

    # Run 1: the same three messages over UDP and over TCP.
    udp_sent, udp_got = _receive(srv, cli, "udp", dst_ip)
    tcp_sent, tcp_got = _receive(srv, cli, "tcp", dst_ip)

    # Run 2: N clients on one UDP server, then N clients held at once on one TCP server.
    udp_server = srv.start_py("sock_stream.py", "udp-serve", SERVE_PORT, n, ready="listening")
    replies = [c.py("sock_stream.py", "udp-ask", dst_ip, SERVE_PORT).json() for c in clients]
    udp_server.wait(6)
    udp_srv = udp_server.json()

    tcp_server = srv.start_py("sock_stream.py", "tcp-serve", SERVE_PORT, n, ready="listening")
    holders = [
        c.start_py("sock_stream.py", "tcp-hold", dst_ip, SERVE_PORT, ready="connected")
        for c in clients
    ]
    tcp_server.wait(6)
    tcp_srv = tcp_server.json()
    for h in holders:
        h.wait(3)  # each client hangs up once the server has counted

    # Check.
    sizes = udp_sent["sent"]
    ev_a = f"{srv.name}: sock_stream.py udp-recv / tcp-recv; {cli.name}: sock_stream.py send"
    ev_b = f"{srv.name}: sock_stream.py udp-serve / tcp-serve (/proc/self/fd and `ss -p`)"
    return [
        check(
            "UDP delivers exactly three datagrams of 100, 200 and 300 bytes",
            sorted(udp_got["datagrams"]) == sorted(sizes)
            and udp_got["sha256"] == udp_sent["sha256"],
            f"datagrams {sizes}",
            f"datagrams {udp_got['datagrams']}"
            + (f" ({udp_got['error']})" if udp_got["error"] else ""),
            evidence=ev_a,
            hint="a missing size is a lost datagram: UDP never resends (look for DROP rules, "
            f"`iptables -S` on the routers and {srv.name}); a merged size would mean a stream "
            "socket",
        ),
        check(
            "TCP delivers the same 600 bytes, with no message boundaries promised",
            tcp_got["total"] == tcp_sent["total"] and tcp_got["sha256"] == tcp_sent["sha256"],
            f"{tcp_sent['total']} bytes with sha256 {tcp_sent['sha256'][:12]}..; "
            "any recv() chunking",
            f"{tcp_got['total']} bytes with sha256 {tcp_got['sha256'][:12]}.. in recv() chunks "
            f"{tcp_got['chunks']} (sent as {tcp_sent['sent']})"
            + (f" ({tcp_got['error']})" if tcp_got["error"] else ""),
            evidence=ev_a,
            hint="TCP retransmits what is lost, so missing bytes mean the connection broke "
            "(reset or timed out) before the stream ended",
        ),
        check(
            f"a UDP server answers {n} clients from one socket",
            len(udp_srv["socket_fds"]) == 1 and len(udp_srv["peers"]) == n,
            f"1 socket, {n} distinct clients answered",
            f"{len(udp_srv['socket_fds'])} socket(s), clients "
            f"{[':'.join(map(str, p)) for p in udp_srv['peers']]}, replies "
            f"{[r['reply'] for r in replies]} | ss: {' / '.join(udp_srv['ss'])}",
            evidence=ev_b,
            hint="fewer clients means a datagram or its reply was lost on the way",
        ),
        check(
            f"a TCP server with {n} clients connected holds {n}+1 sockets",
            len(tcp_srv["socket_fds"]) == n + 1 and len(tcp_srv["peers"]) == n,
            f"{n + 1} sockets: 1 listening + {n} accepted",
            f"{len(tcp_srv['socket_fds'])} socket(s) for clients "
            f"{[':'.join(map(str, p)) for p in tcp_srv['peers']]} | ss: "
            f"{' / '.join(tcp_srv['ss'])}" + (f" ({tcp_srv['error']})" if tcp_srv["error"] else ""),
            evidence=ev_b,
            hint="a client that could not connect leaves the count short; check the routes "
            f"from that client to {srv.name}",
        ),
    ]


EXERCISE = Exercise(
    name="stream-vs-datagram",
    summary="UDP keeps datagram boundaries, TCP only bytes; UDP serves N from 1 socket, TCP N+1.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
