"""socket-is-address-protocol-port, by hand: a TCP and a UDP socket on one port number, and a
datagram that reaches the UDP one. Verified from srv's socket table and a capture on lan2."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, fail
from hoplab.lessons.evidence import captured, listening, show
from hoplab.lessons.model import Command, Lesson, Step, Watch

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun

PORT = 6000  # no exercise uses it, so nothing of hoplab's sends there
TCP_SERVER = f"nc -4 -l {PORT}"
UDP_SERVER = f"socat -u UDP4-RECV:{PORT} STDOUT"
SEND = f"echo hello | nc -4 -u -w1 {{srv}} {PORT}"
DATAGRAMS = Watch("srv", "lan2", "udp")


def _tcp(run: StepRun) -> Check:
    return listening(run, "srv", ("tcp",), PORT)


def _both(run: StepRun) -> Check:
    return listening(run, "srv", ("tcp", "udp"), PORT)


def _datagram(run: StepRun) -> Check:
    """A datagram from alice to srv's UDP port, over IPv4, seen on lan2 at srv."""
    alice, srv = run.names.fill("{alice}"), run.names.fill("{srv}")
    frames = [f for f in captured(run, DATAGRAMS) if f.proto == "udp"]
    right = [f for f in frames if (f.src_ip, f.dst_ip, f.dport) == (alice, srv, PORT)]
    expected = f"a UDP datagram {alice} -> {srv}:{PORT} on lan2"
    if right:
        return check("", True, expected, show(right))
    near = [f for f in frames if f.dport == PORT or f.src_ip == alice]
    if not near:
        return fail("", expected, show(frames))
    wrong = near[0]
    if ":" in wrong.dst_ip:
        why = "it went over IPv6 (names resolve IPv6 first) to a socket that is IPv4 only: add -4"
    elif wrong.dport != PORT:
        why = f"it went to port {wrong.dport}, not {PORT}"
    else:
        why = f"it came from {wrong.src_ip}: send it from alice"
    return fail("", expected, show(near), hint=f"a datagram was seen, but {why}")


LESSON = Lesson(
    name="socket-is-address-protocol-port",
    title="A socket is an address, a protocol and a port",
    why="""\
"Port 6000" is only a third of a name. A server's socket is (address, protocol, port): TCP port
6000 and UDP port 6000 are two different doors, and the kernel hands a segment to a socket by
its protocol first, then the port, then the address. You will open both on srv at once, and
send a datagram that can only reach the UDP one.

In the house picture srv is a house and a port a door; the protocol is which kind of door
(TCP's takes calls, UDP's a letterbox). The picture breaks at addresses: srv has two (lan2 and
lan3), so it is one house with two street numbers, and a socket can be bound to one of them
only.""",
    steps=(
        Step(
            title="a TCP socket on port 6000",
            text=f"""\
On srv, start a TCP server with nc and leave it running. `-4` keeps it on IPv4, `-l` makes it
listen on port {PORT} of every address (0.0.0.0).""",
            commands=(Command("srv", TCP_SERVER, keeps_running=True), Command("srv", "ss -tlnp")),
            expect=f'`ss -tlnp` shows `LISTEN ... 0.0.0.0:{PORT} ... users:(("nc",...))`.',
            verify=_tcp,
            hints=(
                f"start the TCP server on srv and leave it running: {TCP_SERVER}",
                "is it still running? nc -l ends after its first client; start it again",
            ),
        ),
        Step(
            title="a UDP socket on the same port number",
            text="""\
Keep the TCP server and start a UDP one on the same number, in another srv terminal. No
"address already in use": a different protocol is a different socket.""",
            commands=(
                Command("srv", UDP_SERVER, keeps_running=True),
                Command("srv", f"ss -tulnp '( sport = :{PORT} )'"),
            ),
            expect=f"""\
Two lines: `tcp LISTEN ... 0.0.0.0:{PORT}` (nc) and `udp UNCONN ... 0.0.0.0:{PORT}` (socat).""",
            verify=_both,
            hints=(
                f"keep nc running and start the UDP server beside it: {UDP_SERVER}",
                "both must run at once: `ss -tulnp` on srv lists what is yours",
            ),
        ),
        Step(
            title="a datagram to the UDP socket",
            text=f"""\
From alice, send one datagram to srv's UDP port {PORT}. It crosses r1 and r2; the kernel on srv
sees protocol 17 (UDP) and port {PORT}, and hands it to socat, never to nc.""",
            commands=(Command("alice", SEND),),
            expect="socat's terminal on srv prints `hello`; nc's stays silent.",
            verify=_datagram,
            watch=(DATAGRAMS,),
            hints=(
                f"send it from alice: {SEND}",
                "keep -4 and -u: without -u nc speaks TCP, without -4 it dials IPv6",
            ),
        ),
    ),
    pitfalls="""\
- `nc -u -l` locks onto its first peer: a second client's datagrams are dropped. socat's
  UDP4-RECV takes datagrams from anyone.
- `nc -u srv 6000` without -4 sends over IPv6 (names resolve IPv6 first), to a server that
  listens on IPv4 only: nothing arrives, and UDP never tells you.
- The image's nc sets SO_REUSEPORT, so a second `nc -l 6000` does not fail with "address in
  use" as the lesson would lead you to expect: reuseport lets sockets share a port on purpose.
  `python3 -c 'import socket; socket.socket().bind(("", 6000))'` shows the refusal.""",
)
