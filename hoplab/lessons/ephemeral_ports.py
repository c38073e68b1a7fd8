"""ephemeral-ports, by hand: every connection from alice gets a source port of its own, picked
from a range, unless the client picks one itself. Verified from the SYNs alice sent, on lan1."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, fail
from hoplab.lessons.evidence import captured, handshakes, listening
from hoplab.lessons.model import Command, Lesson, Step, Watch

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun

PORT = 7100  # no exercise uses it
CHOSEN = 40123
SERVER = f"socat TCP4-LISTEN:{PORT},fork,reuseaddr EXEC:cat"
RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
THREE = f"for i in 1 2 3; do nc -4 -z {{srv}} {PORT}; done"
MINE = f"nc -4 -z -p {CHOSEN} {{srv}} {PORT}"
SYNS = Watch("r1", "lan1", f"tcp port {PORT} and tcp[tcpflags] & tcp-syn != 0")


def _server(run: StepRun) -> Check:
    return listening(run, "srv", ("tcp",), PORT)


def _alice_syns(run: StepRun) -> list:
    alice, srv = run.names.fill("{alice}"), run.names.fill("{srv}")
    return [f for f in handshakes(captured(run, SYNS), srv, PORT)["syn"] if f.src_ip == alice]


def _three(run: StepRun) -> Check:
    low, high = map(int, run.lab.node("alice").run(["cat", RANGE]).out.split())
    syns = _alice_syns(run)
    ports = sorted({f.sport for f in syns})
    expected = f"3 or more SYNs from alice to srv:{PORT}, each from its own port in {low}-{high}"
    observed = f"source ports {ports}" if ports else "no SYN from alice"
    inside = [p for p in ports if low <= p <= high]
    if len(inside) >= 3:
        return check("", True, expected, observed)
    if not ports:
        return fail("", expected, observed)
    return fail(
        "",
        expected,
        observed,
        hint=f"{len(ports)} connection(s) seen; make three (the for loop), and let the kernel "
        "pick the port: no -p",
    )


def _chosen(run: StepRun) -> Check:
    syns = _alice_syns(run)
    expected = f"a SYN from alice's port {CHOSEN} to srv:{PORT}"
    if any(f.sport == CHOSEN for f in syns):
        return check("", True, expected, f"source port {CHOSEN}")
    if not syns:
        return fail("", expected, "no SYN from alice")
    seen = sorted({f.sport for f in syns})
    return fail("", expected, f"source ports {seen}", hint=f"choose the port with -p {CHOSEN}")


LESSON = Lesson(
    name="ephemeral-ports",
    title="Ephemeral ports: the client's side of the 4-tuple",
    why="""\
A server picks its port (80, 7100) so that clients know where to call. A client does not care
which port it calls from, so its kernel picks one for each connection from the ephemeral range,
and a different one for every connection that is still around. That is what lets one client
open many connections to the same server: the 4-tuples differ in the client port. In the
telephone picture this is the extension the call comes *from*; unlike a real phone, it is
handed out per call and given back later (after TIME_WAIT, for the side that closed first).""",
    steps=(
        Step(
            title="a server, and alice's range",
            text=f"""\
Start a server on srv port {PORT} and leave it running. On alice, read the range her kernel
picks client ports from.""",
            commands=(
                Command("srv", SERVER, keeps_running=True),
                Command("alice", f"cat {RANGE}"),
            ),
            expect="Two numbers, low and high (Linux's default is 32768 60999).",
            verify=_server,
            hints=(f"start the server on srv and leave it running: {SERVER}",),
        ),
        Step(
            title="three connections, three ports",
            text="""\
Connect three times from alice (`-z`: connect, then close at once), then list alice's
connections in TIME-WAIT: alice closed first, so her side keeps each 4-tuple for a minute.""",
            commands=(
                Command("alice", THREE),
                Command("alice", f"ss -tn state time-wait '( dport = :{PORT} )'"),
            ),
            expect=f"""\
Lines `{{alice}}:<port> {{srv}}:{PORT}`, each with a port of its own inside the range (the
last may still be closing).""",
            verify=_three,
            watch=(SYNS,),
            hints=(
                f"connect three times from alice: {THREE}",
                "keep the server of step 1 running: a refused connection is still a SYN, but "
                "check it is there (ss -tlnp on srv)",
            ),
        ),
        Step(
            title="choose the port yourself",
            text=f"""\
A client can bind before it connects, like a server does: nc's -p does it. Connect from alice's
port {CHOSEN}.""",
            commands=(Command("alice", MINE),),
            expect=f"No output (success); `ss -tn state time-wait` on alice now shows {CHOSEN}.",
            verify=_chosen,
            watch=(SYNS,),
            hints=(
                f"connect from port {CHOSEN}: {MINE}",
                f"if nc says the address is in use, {CHOSEN} is still in TIME_WAIT from an "
                "earlier try: wait a minute",
            ),
        ),
    ),
    pitfalls="""\
- /proc/sys is read-only in lab nodes, so the range cannot be changed there; the exercise of
  the same name narrows it per socket (IP_LOCAL_PORT_RANGE) instead.
- Ports in TIME_WAIT are not free for the same 4-tuple: a fixed client port (-p) to the same
  server fails for about a minute after the last connection closed.
- Linux starts its search at a point hashed from the destination, and prefers even ports for
  connect() (odd ones are left for bind()): the ports you see are neither random nor
  consecutive.""",
)
