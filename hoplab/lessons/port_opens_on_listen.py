"""port-opens-on-listen, by hand: a port nobody listens on answers a SYN with a RST; once a
server listens, the same SYN gets a SYN-ACK. Verified from the handshakes alice's SYNs got."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, fail
from hoplab.lessons.evidence import captured, handshakes, listening, show
from hoplab.lessons.model import Command, Lesson, Step, Watch

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun

PORT = 7300  # no exercise uses it
SERVER = f"socat TCP4-LISTEN:{PORT},fork,reuseaddr EXEC:cat"
DIAL = f"nc -4 -z -w2 {{srv}} {PORT}; echo $?"
SHAKES = Watch("srv", "lan2", f"tcp port {PORT}")


def _answered(how: str):  # noqa: ANN202 - a verify
    """alice's SYN to srv's port got `how` back ("refused": RST, "accepted": SYN-ACK)."""

    def verify(run: StepRun) -> Check:
        alice, srv = run.names.fill("{alice}"), run.names.fill("{srv}")
        frames = [f for f in captured(run, SHAKES) if alice in (f.src_ip, f.dst_ip)]
        shakes = handshakes(frames, srv, PORT)
        word = {"refused": "RST", "accepted": "SYN-ACK"}[how]
        expected = f"alice's SYN to {srv}:{PORT} answered by a {word}"
        if shakes["syn"] and shakes[how]:
            return check("", True, expected, show(shakes["syn"][:1] + shakes[how][:1]))
        if not shakes["syn"]:
            return fail("", expected, show(frames))
        other = "accepted" if how == "refused" else "refused"
        if shakes[other]:
            hint = (
                "srv accepted: something of yours already listens there; stop it (Ctrl-C)"
                if how == "refused"
                else "srv still refuses: is your server running, on port " + str(PORT) + "?"
            )
            return fail("", expected, show(frames), hint=hint)
        return fail("", expected, show(frames))

    return verify


def _server(run: StepRun) -> Check:
    return listening(run, "srv", ("tcp",), PORT)


LESSON = Lesson(
    name="port-opens-on-listen",
    title="A port opens when a program listens",
    why="""\
A port is not open or closed by itself: it is open while a socket is bound to it and listening.
Knock on a port nobody listens on and srv's kernel answers at once with a RST ("connection
refused"): the host is there, the door is not. Start a server and the same knock gets a SYN-ACK.
In the house picture, the door exists only while someone stands behind it; the picture breaks
because the kernel, not the program, opens it and answers the knock (the handshake completes
before the program calls accept()).""",
    steps=(
        Step(
            title="knock on a closed port",
            text=f"From alice, try to connect to srv's port {PORT}, where nothing listens yet.",
            commands=(Command("alice", DIAL),),
            expect="`1`: connection refused, at once (a RST came back, not silence).",
            verify=_answered("refused"),
            watch=(SHAKES,),
            hints=(f"dial from alice: {DIAL}",),
        ),
        Step(
            title="open it: listen",
            text=f"Start a server on srv port {PORT} and leave it running.",
            commands=(Command("srv", SERVER, keeps_running=True), Command("srv", "ss -tlnp")),
            expect=f'`LISTEN ... 0.0.0.0:{PORT} ... users:(("socat",...))`.',
            verify=_server,
            hints=(f"start it on srv and leave it running: {SERVER}",),
        ),
        Step(
            title="knock again",
            text="Dial the same port from alice once more.",
            commands=(Command("alice", DIAL),),
            expect="`0`: the handshake completed (SYN, SYN-ACK, ACK), then nc closed.",
            verify=_answered("accepted"),
            watch=(SHAKES,),
            hints=(
                f"dial from alice again: {DIAL}",
                "keep the server of step 2 running",
            ),
        ),
    ),
    pitfalls="""\
- A firewall that DROPs instead of rejecting makes a closed port look like a dead host:
  silence and a timeout instead of "refused" (see errors-by-layer).
- `nc -z srv` without -4 tries IPv6 first; with a server on 0.0.0.0 only, that attempt is
  refused even while the IPv4 port is open.
- Routers do not look at ports when they only forward; a router that filters or NATs does
  (see nat).""",
)
