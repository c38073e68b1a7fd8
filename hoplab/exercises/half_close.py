"""half-close: shutdown(SHUT_WR) ends one direction of a TCP connection; the other stays open."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.exercises.base import Cast, Exercise
from hoplab.runtime.needs import client_server

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab

LESSON = """\
A TCP connection is two byte streams, one each way, and each side can end its own stream on its
own. shutdown(SHUT_WR) does that: the kernel sends a FIN, which says "no more bytes from me",
while the socket can still read. The other side sees the end of the stream as recv() returning
b'' (zero bytes). Its own direction is untouched, so it can go on sending, and only its close()
ends the second stream.

That is how a client says "that was the whole request" without a length field: it sends the
request, half-closes, and waits for the answer. close() would not do: it gives up reading too,
and a reply arriving at a closed socket is answered with a reset.

Evidence: the server's record of recv() returning b'' and of its reply sent after that, the
reply as the client received it, and a capture on the path in which the client's FIN comes
before the server's first data.
"""

PORT = 9183
TIMEOUT = 3  # seconds; the exchange itself takes milliseconds
# How long the server waits for the client to connect. That wait spans the capture's start and
# the client's exec, not only the exchange: over 2 s on a loaded engine, so 3 s failed by chance.
ACCEPT_WAIT = 60

NEEDS = client_server("alice", "srv")


def run(lab: Lab, cast: Cast) -> list[Check]:
    # Set up: the server on srv answers only once the request has ended; alice is two routers
    # away, and the capture sits on the last segment, at the last router.
    cli, srv = cast["client"], cast["server"]
    cli_ip, srv_ip = cli.address(), srv.address()
    path = lab.path(cli.name, srv_ip)
    at, net = (path[-1][0].name if path else srv.name), lab.network_of(srv_ip)
    message = f"hoplab half-close {secrets.token_hex(4)}"
    expected_reply = "REPLY " + message.upper()
    server = srv.start_py(
        "hop_halfclose.py", "serve", PORT, TIMEOUT, ACCEPT_WAIT, ready="listening"
    )

    # Run: request, shutdown(SHUT_WR), read the reply.
    with lab.capture(at, net, bpf=f"tcp port {PORT}", label=f"{net}-at-{at}") as cap:
        got = cli.py("hop_halfclose.py", "client", srv_ip, PORT, message, TIMEOUT).json()
        server.wait(TIMEOUT)
    seen = server.json()

    # Collect: frame order on the wire.
    frames = list(enumerate(cap.frames, 1))
    fin = next((i for i, f in frames if f.src_ip == cli_ip and "F" in f.tcp_flags), None)
    data = next((i for i, f in frames if f.src_ip == srv_ip and f.payload_len), None)
    late = [i for i, f in frames if f.src_ip == cli_ip and f.payload_len and fin and i > fin]
    evidence = str(cap.path or f"capture on {at} {net}")

    # Check.
    return [
        check(
            "the server's recv() returns b'' once the client has shut down its side",
            seen.get("eof") is True and seen.get("bytes") == len(message),
            f"{len(message)} request bytes, then recv() == b''",
            f"{seen.get('bytes')} bytes, then "
            + ("recv() == b''" if seen.get("eof") else seen.get("error", "no end of stream")),
            evidence=f"{srv.name}: hop_halfclose.py serve",
            hint="no b'': the client's FIN never reached the server (dropped on the way?) or "
            "the client did not call shutdown(SHUT_WR)",
        ),
        check(
            "the server still replies after the end of the request",
            seen.get("eof") is True and seen.get("replied") == len(expected_reply),
            f"{len(expected_reply)} reply bytes sent after recv() == b''",
            f"{seen.get('replied')} bytes sent"
            + (f" ({seen['error']})" if "error" in seen else ""),
            evidence=f"{srv.name}: hop_halfclose.py serve",
            hint="the server's direction is still open after the client's FIN; a failure "
            "here means the connection was reset or the server never saw the end",
        ),
        check(
            "the client receives the reply on its half-closed socket",
            got.get("shutdown") is True and got.get("reply") == expected_reply,
            repr(expected_reply),
            repr(got.get("reply")) + (f" ({got['error']})" if "error" in got else ""),
            evidence=f"{cli.name}: hop_halfclose.py client",
            hint="close() instead of shutdown(SHUT_WR) gives up reading too; a reset "
            "(ECONNRESET) or a timeout means the reply never arrived",
        ),
        check(
            "on the wire the client's FIN comes before the server's data",
            fin is not None and data is not None and fin < data and not late,
            f"{cli.name}'s FIN ({cli_ip}), then the first data from {srv.name} ({srv_ip}); "
            f"no data from {cli.name} after its FIN",
            f"FIN from {cli.name} at frame {fin or 'none'}, first data from {srv.name} at "
            f"frame {data or 'none'} of {len(frames)}"
            + (f"; client data after its FIN at frames {late}" if late else ""),
            evidence=f"{evidence} (on {net}, at {at})",
            hint="no FIN: it was dropped or never sent; data before the FIN: the server "
            "answered before the request had ended",
        ),
    ]


EXERCISE = Exercise(
    name="half-close",
    summary="shutdown(SHUT_WR) ends one direction: the server reads b'' and still replies.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
