"""time-wait-and-reuseaddr, by hand: whoever closes first keeps the connection in TIME_WAIT;
on a server that holds its port, and a restarted server binds it only with SO_REUSEADDR.
Verified from the FINs on lan2 and from srv's socket table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, fail
from hoplab.lessons.evidence import captured, show
from hoplab.lessons.model import Command, Lesson, Step, Watch
from hoplab.lessons.sockets import all_sockets, listeners, seen

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun

CLIENT_CLOSES, SERVER_CLOSES = 7800, 7801  # no exercise uses them
ECHO = f"socat TCP4-LISTEN:{CLIENT_CLOSES},fork,reuseaddr EXEC:cat"
BYE = f"socat TCP4-LISTEN:{SERVER_CLOSES},reuseaddr SYSTEM:'echo bye'"
AGAIN = f"socat TCP4-LISTEN:{SERVER_CLOSES},fork,reuseaddr EXEC:cat"
PLAIN_BIND = f"python3 -c 'import socket; socket.socket().bind((\"\", {SERVER_CLOSES}))'"
FINS = Watch("srv", "lan2", f"tcp port {CLIENT_CLOSES} or tcp port {SERVER_CLOSES}")


def _first_fin(port: int, closer: str):  # noqa: ANN202 - a verify
    """On a connection between alice and srv's port, closer ("alice" or "srv") sent the first
    FIN."""

    def verify(run: StepRun) -> Check:
        alice = run.names.fill("{alice}")
        frames = [f for f in captured(run, FINS) if alice in (f.src_ip, f.dst_ip)]
        firsts: dict[int, str] = {}  # alice's port -> who sent the first FIN on it
        for f in frames:
            if "F" not in f.tcp_flags or port not in (f.sport, f.dport):
                continue
            theirs = f.sport if f.src_ip == alice else f.dport
            firsts.setdefault(theirs, "alice" if f.src_ip == alice else "srv")
        expected = f"a connection alice -> srv:{port} that {closer} closed first"
        observed = ", ".join(f"{who} first (alice's port {p})" for p, who in firsts.items())
        if closer in firsts.values():
            return check("", True, expected, observed)
        if firsts:
            return fail("", expected, observed, hint=f"{closer} must close first: see the text")
        return fail("", expected, show(frames))

    return verify


def _rebound(run: StepRun) -> Check:
    socks = all_sockets(run.lab.node("srv"))
    waiting = [s for s in socks if s.state == "TIME-WAIT" and s.port == SERVER_CLOSES]
    mine = [s for s in listeners(socks, "tcp") if s.port == SERVER_CLOSES and s.learners]
    expected = f"your server listening on srv:{SERVER_CLOSES} while TIME-WAIT still holds it"
    observed = seen(waiting + mine) if waiting or mine else "neither"
    if waiting and mine:
        return check("", True, expected, observed)
    if mine:
        return fail(
            "",
            expected,
            observed,
            hint="TIME-WAIT on srv is over (60 s): run step 2 again, then this step at once",
        )
    return fail("", expected, observed)


LESSON = Lesson(
    name="time-wait-and-reuseaddr",
    title="TIME_WAIT, and why servers set SO_REUSEADDR",
    why="""\
A TCP connection ends with a FIN from each side. The side whose FIN goes first (the active
closer) keeps the connection's 4-tuple in TIME_WAIT for 60 s (on Linux), so that a late
segment of the old connection is never taken for a new one. The side that closes second just
goes away. When the server closes first, the TIME_WAIT is on the server and holds its port: a
restarted server then gets "address already in use" from bind(), although nothing listens,
unless it sets SO_REUSEADDR. SO_REUSEADDR still never lets two sockets *listen* on one address
and port: that is SO_REUSEPORT's job.""",
    steps=(
        Step(
            title="the client closes first",
            text=f"""\
Start an echo server on srv port {CLIENT_CLOSES}. From alice, connect and close at once
(`-z`): alice's FIN goes first, and alice keeps the TIME_WAIT.""",
            commands=(
                Command("srv", ECHO, keeps_running=True),
                Command("alice", f"nc -4 -z {{srv}} {CLIENT_CLOSES}"),
                Command("alice", f"ss -tn state time-wait '( dport = :{CLIENT_CLOSES} )'"),
            ),
            expect=f"A line `{{alice}}:<port> {{srv}}:{CLIENT_CLOSES}` on alice, in TIME-WAIT.",
            verify=_first_fin(CLIENT_CLOSES, "alice"),
            watch=(FINS,),
            hints=(f"start {ECHO} on srv, then from alice: nc -4 -z {{srv}} {CLIENT_CLOSES}",),
        ),
        Step(
            title="the server closes first",
            text=f"""\
Now a server on srv port {SERVER_CLOSES} that says "bye" and closes: its FIN goes first, and
the TIME_WAIT lands on srv, holding port {SERVER_CLOSES}.""",
            commands=(
                Command("srv", BYE, keeps_running=True),
                Command("alice", f"nc -4 {{srv}} {SERVER_CLOSES}"),
                Command("srv", f"ss -tn state time-wait '( sport = :{SERVER_CLOSES} )'"),
            ),
            expect=f"""\
alice prints `bye`; srv shows `{{srv}}:{SERVER_CLOSES} {{alice}}:<port>` in TIME-WAIT.""",
            verify=_first_fin(SERVER_CLOSES, "srv"),
            watch=(FINS,),
            hints=(f"start {BYE} on srv, then from alice: nc -4 {{srv}} {SERVER_CLOSES}",),
        ),
        Step(
            title="restart the server",
            text=f"""\
Within a minute, start a server on port {SERVER_CLOSES} again. A plain bind() fails while the
TIME_WAIT lasts; socat's `reuseaddr` sets SO_REUSEADDR, and its bind succeeds.""",
            commands=(
                Command("srv", f"{PLAIN_BIND}; echo exit $?"),
                Command("srv", AGAIN, keeps_running=True),
                Command("srv", f"ss -tan '( sport = :{SERVER_CLOSES} )'"),
            ),
            expect=f"""\
`OSError: [Errno 98] Address already in use`, then socat LISTENs on {SERVER_CLOSES} beside the
TIME-WAIT line.""",
            verify=_rebound,
            hints=(
                f"bind again with reuseaddr within 60 s of step 2: {AGAIN}",
                "step 2's TIME_WAIT lasts 60 s: if it is gone, do step 2 again first",
            ),
        ),
    ),
    pitfalls="""\
- TIME_WAIT sockets belong to no process: `ss -p` shows no program for them, and killing
  anything does not end them.
- The image's nc sets SO_REUSEADDR and SO_REUSEPORT, so `nc -l` never shows this refusal: the
  plain python3 bind does.
- The client side's TIME_WAIT rarely hurts: each new connection takes another ephemeral port.""",
)
