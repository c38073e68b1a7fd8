"""half-close, by hand: a server that answers at the end of the stream needs the client's FIN;
shutdown(SHUT_WR) sends it while the client keeps reading. Verified from the segments at srv."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, fail
from hoplab.lessons.evidence import captured, listening
from hoplab.lessons.model import Command, Lesson, Step, Watch

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun
    from hoplab.runtime.pcap import Frame

PORT = 7600  # no exercise uses it
SERVER = f"socat TCP4-LISTEN:{PORT},fork,reuseaddr SYSTEM:'wc -c'"
NO_FIN = f"printf hello | timeout 3 nc -4 {{srv}} {PORT}; echo exit $?"
HALF = f"printf hello | nc -4 -N {{srv}} {PORT}"
SEGMENTS = Watch("srv", "lan2", f"tcp port {PORT}")


def _conversations(run: StepRun) -> list[list[Frame]]:
    """alice's connections to srv's PORT, each its segments in order (keyed by her port)."""
    alice = run.names.fill("{alice}")
    by_port: dict[int, list[Frame]] = {}
    for f in captured(run, SEGMENTS):
        if f.proto == "tcp" and f.src_ip == alice and f.dport == PORT:
            by_port.setdefault(f.sport, []).append(f)
        elif f.proto == "tcp" and f.dst_ip == alice and f.sport == PORT:
            by_port.setdefault(f.dport, []).append(f)
    return list(by_port.values())


def _story(conv: list[Frame], alice: str) -> dict[str, float]:
    """When (capture time) alice's data, alice's FIN, srv's answer and alice's RST came."""
    marks: dict[str, float] = {}
    for f in conv:
        who = "alice" if f.src_ip == alice else "srv"
        if f.payload_len:
            marks.setdefault(f"{who} data", f.time)
        if "F" in f.tcp_flags:
            marks.setdefault(f"{who} FIN", f.time)
        if "R" in f.tcp_flags:
            marks.setdefault(f"{who} RST", f.time)
    return marks


def _describe(marks: dict[str, float]) -> str:
    return " -> ".join(k for k, _ in sorted(marks.items(), key=lambda kv: kv[1])) or "nothing"


def _answer_after_fin(rst_expected: bool):  # noqa: ANN202 - a verify
    """srv's answer left only after alice's FIN; with rst_expected, alice had already gone
    (timeout killed nc) and reset it; without, alice read it (no RST)."""

    def verify(run: StepRun) -> Check:
        alice = run.names.fill("{alice}")
        stories = [_story(c, alice) for c in _conversations(run)]
        expected = (
            "alice data -> (3 s, no answer) alice FIN -> srv data -> alice RST"
            if rst_expected
            else "alice data -> alice FIN -> srv data, read by alice (no RST)"
        )
        for m in stories:
            answered = "srv data" in m and "alice FIN" in m and m["alice FIN"] <= m["srv data"]
            if answered and "alice data" in m and ("alice RST" in m) == rst_expected:
                return check("", True, expected, _describe(m))
        if not stories:
            return fail("", expected, "no connection from alice to srv:" + str(PORT))
        seen = "; ".join(_describe(m) for m in stories)
        if any("srv data" not in m for m in stories):
            hint = "srv never answered: is the step 1 server running (it answers after EOF)?"
        elif rst_expected:
            hint = "alice stayed to read the answer: leave out -N, so nc never sends its FIN"
        else:
            hint = "alice reset the connection: use -N, so nc half-closes and stays to read"
        return fail("", expected, seen, hint=hint)

    return verify


def _server(run: StepRun) -> Check:
    return listening(run, "srv", ("tcp",), PORT)


LESSON = Lesson(
    name="half-close",
    title="Half-close: 'I am done sending, still listening'",
    why="""\
A TCP connection has two directions, and each can be closed on its own. shutdown(SHUT_WR) sends
a FIN: "no more data from me", while the socket still reads what the peer sends back. A server
that answers once it has the whole request (counts bytes, sorts, compresses) waits for that
FIN: its read() returns 0 (end of file) only then. In the telephone picture: saying "over" on
a radio, not hanging up; the picture breaks because each side says "over" once, for good.""",
    steps=(
        Step(
            title="a server that answers at end of file",
            text=f"""\
Start a server on srv port {PORT} that counts the bytes of each connection (`wc -c`) and
answers with the count once the client's stream has ended.""",
            commands=(Command("srv", SERVER, keeps_running=True),),
            expect=f"`ss -tlnp` on srv shows socat on `0.0.0.0:{PORT}`.",
            verify=_server,
            hints=(f"start it on srv and leave it running: {SERVER}",),
        ),
        Step(
            title="no FIN, no answer",
            text="""\
Send "hello" from alice without half-closing: nc keeps its sending side open, so the server
waits for more. After 3 s `timeout` ends nc; only then does the FIN go, the server answers,
and alice, gone, resets the connection.""",
            commands=(Command("alice", NO_FIN),),
            expect="No count, then `exit 124` (timeout ended nc).",
            verify=_answer_after_fin(rst_expected=True),
            watch=(SEGMENTS,),
            hints=(f"send it from alice: {NO_FIN}",),
        ),
        Step(
            title="half-close with -N",
            text="""\
Now with -N: at the end of its input nc calls shutdown(SHUT_WR). The FIN goes at once, the
server's read returns end of file, it answers, and nc, still reading, prints the answer.""",
            commands=(Command("alice", HALF),),
            expect="`5` at once: five bytes counted.",
            verify=_answer_after_fin(rst_expected=False),
            watch=(SEGMENTS,),
            hints=(
                f"send it from alice with -N: {HALF}",
                "keep the server of step 1 running",
            ),
        ),
    ),
    pitfalls="""\
- close() is not shutdown(): close() gives up both directions, and data arriving afterwards is
  answered with a RST, which step 2 shows.
- Some nc builds half-close by default and others never do: the image's (OpenBSD) nc needs -N.
- A FIN is not an error: the peer's read() returns 0, and it may go on writing.""",
)
