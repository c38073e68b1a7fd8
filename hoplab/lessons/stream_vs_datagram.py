"""stream-vs-datagram, by hand: two sends over UDP arrive as two datagrams; the same bytes over
TCP travel in a connection, after a handshake, as one stream. Verified from captures at srv."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, fail
from hoplab.lessons.evidence import captured, handshakes, listening, show
from hoplab.lessons.model import Command, Lesson, Step, Watch

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun

UDP_PORT, TCP_PORT = 7200, 7201  # no exercise uses them
UDP_SERVER = f"socat -u UDP4-RECV:{UDP_PORT} STDOUT"
TCP_SERVER = f"socat -u TCP4-LISTEN:{TCP_PORT},reuseaddr STDOUT"
TWO_DATAGRAMS = (
    f"printf one | nc -4 -u -w1 {{srv}} {UDP_PORT}; printf two | nc -4 -u -w1 {{srv}} {UDP_PORT}"
)
STREAM = f"(printf one; sleep 0.2; printf two) | nc -4 -N {{srv}} {TCP_PORT}"
UDP_IN = Watch("srv", "lan2", f"udp port {UDP_PORT}")
TCP_IN = Watch("srv", "lan2", f"tcp port {TCP_PORT}")


def _udp_server(run: StepRun) -> Check:
    return listening(run, "srv", ("udp",), UDP_PORT)


def _datagrams(run: StepRun) -> Check:
    alice, srv = run.names.fill("{alice}"), run.names.fill("{srv}")
    frames = [f for f in captured(run, UDP_IN) if f.proto == "udp" and f.src_ip == alice]
    right = [f for f in frames if f.dst_ip == srv and f.dport == UDP_PORT and f.payload_len == 3]
    expected = f"two datagrams {alice} -> {srv}:{UDP_PORT}, 3 bytes each (one, two)"
    if len(right) >= 2:
        return check("", True, expected, show(right))
    if not frames:
        return fail("", expected, "no datagram from alice")
    sizes = [f.payload_len for f in frames]
    return fail(
        "", expected, show(frames), hint=f"datagrams of {sizes} bytes: send one and two apart"
    )


def _stream(run: StepRun) -> Check:
    alice, srv = run.names.fill("{alice}"), run.names.fill("{srv}")
    frames = [f for f in captured(run, TCP_IN) if alice in (f.src_ip, f.dst_ip)]
    shakes = handshakes(frames, srv, TCP_PORT)
    data = sum(f.payload_len for f in frames if f.src_ip == alice and f.dport == TCP_PORT)
    fin = any("F" in f.tcp_flags for f in frames if f.src_ip == alice)
    expected = f"a TCP connection {alice} -> {srv}:{TCP_PORT}: SYN, SYN-ACK, 6 bytes of data, FIN"
    observed = (
        f"SYN {len(shakes['syn'])}, SYN-ACK {len(shakes['accepted'])}, "
        f"RST {len(shakes['refused'])}, {data} bytes, FIN {'yes' if fin else 'no'}"
    )
    if shakes["syn"] and shakes["accepted"] and data == 6 and fin:
        return check("", True, expected, observed)
    if not frames:
        return fail("", expected, show(frames))
    if shakes["refused"]:
        return fail("", expected, observed, hint=f"srv refused: start the TCP server on {TCP_PORT}")
    return fail("", expected, observed, hint="send both words over one connection, with -N")


LESSON = Lesson(
    name="stream-vs-datagram",
    title="Streams and datagrams",
    why="""\
UDP (SOCK_DGRAM) sends datagrams: each send is one packet with its own boundaries, delivered
whole or not at all, with no connection and no retransmission. TCP (SOCK_STREAM) is a
connection that carries a byte stream: a handshake first, then bytes in order, acknowledged,
with no boundaries between what the sender wrote. In the telephone picture TCP is the call
(dial, talk, hang up) and UDP is a text message; the picture breaks because a TCP "call" has no
sentences at all: two writes may arrive as one read, and one write as two.""",
    steps=(
        Step(
            title="a UDP server",
            text=f"Start a UDP server on srv port {UDP_PORT} and leave it running.",
            commands=(Command("srv", UDP_SERVER, keeps_running=True),),
            expect=f"Nothing yet; `ss -ulnp` on srv shows `UNCONN ... 0.0.0.0:{UDP_PORT}`.",
            verify=_udp_server,
            hints=(f"start it on srv and leave it running: {UDP_SERVER}",),
        ),
        Step(
            title="two datagrams",
            text="""\
From alice, send "one" and then "two", each in a datagram of its own. No handshake comes
before them and no acknowledgement after.""",
            commands=(Command("alice", TWO_DATAGRAMS),),
            expect="The server prints `onetwo` (socat's STDOUT adds no newline): two datagrams.",
            verify=_datagrams,
            watch=(UDP_IN,),
            hints=(
                f"send them from alice: {TWO_DATAGRAMS}",
                "keep -4 -u: without -4 nc dials IPv6, and the server listens on IPv4",
            ),
        ),
        Step(
            title="the same bytes as a stream",
            text=f"""\
Start a TCP server on srv port {TCP_PORT} (it takes one connection and prints the stream) and,
from alice, write "one", wait, write "two" on one connection. -N closes it after the input.""",
            commands=(
                Command("srv", TCP_SERVER, keeps_running=True),
                Command("alice", STREAM),
            ),
            expect="The server prints `onetwo`: the stream kept the bytes and lost the two writes.",
            verify=_stream,
            watch=(TCP_IN,),
            hints=(
                f"start the TCP server on srv ({TCP_SERVER}), then send from alice: {STREAM}",
                "the TCP server takes one connection: start it again for each try",
            ),
        ),
    ),
    pitfalls="""\
- A datagram larger than the reader's buffer is cut: recvfrom() returns what fits and the rest
  is lost (MSG_TRUNC tells you). "Whole" holds only for a big enough buffer.
- `nc -u -l` locks onto its first peer; socat's UDP4-RECV takes datagrams from anyone.
- On the wire a TCP write and a segment are not the same thing either: Nagle, TSO and the
  receiver's reads regroup bytes as they like.""",
)
