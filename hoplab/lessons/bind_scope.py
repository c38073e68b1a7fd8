"""bind-scope, by hand: a server bound to one of srv's two addresses answers there only; bound
to 0.0.0.0 it answers on both. Verified from srv's sockets and from the handshakes on srv's two
LANs (a SYN-ACK where the server listens, a RST where it does not)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, fail
from hoplab.lessons.evidence import captured, handshakes, show
from hoplab.lessons.model import Command, Lesson, Step, Watch
from hoplab.lessons.sockets import learner_sockets, listeners, seen

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun

PORT = 7000  # no exercise uses it
ONE = f"socat TCP4-LISTEN:{PORT},bind={{srv@lan3}},fork,reuseaddr EXEC:cat"
ALL = f"socat TCP4-LISTEN:{PORT},fork,reuseaddr EXEC:cat"
DIAL = "; ".join(f"nc -4 -z -w2 {{srv@{net}}} {PORT}; echo {net} $?" for net in ("lan2", "lan3"))
STOP = f"pkill -f 'TCP4-LISTEN:{PORT},bind'"
ON_LAN2 = Watch("srv", "lan2", f"tcp port {PORT}")
ON_LAN3 = Watch("srv", "lan3", f"tcp port {PORT}")


def _bound(address: str):  # noqa: ANN202 - a verify
    def verify(run: StepRun) -> Check:
        want = run.names.fill(address)
        servers = [s for s in listeners(learner_sockets(run.lab.node("srv")), "tcp")]
        here = [s for s in servers if s.port == PORT]
        expected = f"your TCP server on srv bound to {want}:{PORT}"
        if any(s.address == want for s in here):
            return check("", True, expected, seen(here))
        if here:
            return fail(
                "",
                expected,
                seen(here),
                hint=f"yours is bound to {here[0].address}, not {want}"
                + (": stop it first (Ctrl-C in its terminal)" if want == "0.0.0.0" else ""),
            )
        return fail("", expected, seen(servers))

    return verify


def _answers(accepted: tuple[str, ...], refused: tuple[str, ...]):  # noqa: ANN202 - a verify
    """carol's SYNs reached srv on each named network, answered as the bind says."""

    def verify(run: StepRun) -> Check:
        n = run.names
        carol = n.fill("{carol}")
        # srv answers carol's SYN to its lan3 address out of lan2 (carol's own LAN): the two
        # captures are read together, each handshake by the address it was sent to.
        frames = [f for w in (ON_LAN2, ON_LAN3) for f in captured(run, w)]
        frames_seen = [f for f in frames if carol in (f.src_ip, f.dst_ip)]
        got: dict[str, str] = {}
        for net in ("lan2", "lan3"):
            shakes = handshakes(frames_seen, n.fill(f"{{srv@{net}}}"), PORT)
            if shakes["accepted"]:
                got[net] = "accepted"
            elif shakes["refused"]:
                got[net] = "refused"
            elif shakes["syn"]:
                got[net] = "unanswered"
        want = {net: "accepted" for net in accepted} | {net: "refused" for net in refused}
        expected = ", ".join(
            f"{n.fill('{srv@' + net + '}')}:{PORT} ({net}) {how}" for net, how in want.items()
        )
        observed = ", ".join(f"{net} {how}" for net, how in got.items()) or show(frames_seen)
        if got == want:
            return check("", True, expected, observed)
        if not got:
            return fail("", expected, observed)
        return fail(
            "",
            expected,
            observed,
            hint="carol's connections were answered otherwise: is the server of this step "
            "the only one on port " + str(PORT) + "? (ss -tlnp on srv)",
        )

    return verify


LESSON = Lesson(
    name="bind-scope",
    title="Bind to one address, or to all of them",
    why="""\
srv has two addresses, {srv@lan2} on lan2 and {srv@lan3} on lan3. A server chooses, when it
binds, which of them it listens on: one (a specific address), or all (0.0.0.0, "any"). A
connection to an address the server did not bind is refused by the kernel with a RST, exactly
as if nothing listened, even though the same port is open on the other address.

House picture: srv is one house on two streets, with a door numbered {PORT} on each side. A
server bound to {srv@lan3} opens the door on one street only. The picture breaks where routing
comes in: the street a visitor uses is picked by the address they dial, not by where they stand.
carol lives on lan2, yet her connection to {srv@lan3} is routed through r2 and arrives at the
lan3 door.""".replace("{PORT}", str(PORT)),
    steps=(
        Step(
            title="a server bound to srv's lan3 address",
            text="""\
On srv, start a server bound to its lan3 address only, and leave it running. Then look at it:
the local address is no longer 0.0.0.0.""",
            commands=(Command("srv", ONE, keeps_running=True), Command("srv", "ss -tlnp")),
            expect=f'`LISTEN ... {{srv@lan3}}:{PORT} 0.0.0.0:* users:(("socat",...))`',
            verify=_bound("{srv@lan3}"),
            hints=(
                f"start it on srv and leave it running: {ONE}",
                f"bind=ADDRESS is socat's way to bind one address; port {PORT}",
            ),
        ),
        Step(
            title="dial both addresses from carol",
            text="""\
From carol, try both of srv's addresses (`nc -z` connects and closes at once). One answers,
one refuses: same host, same port, different address. Routing has its say too: carol's SYN
to the lan3 address goes through r2 and in at srv's lan3 side, but srv's answer leaves by lan2,
its shortest way back to carol. hoplab watches both sides.""",
            commands=(Command("carol", DIAL),),
            expect="`lan2 1` (refused) and `lan3 0` (connected).",
            verify=_answers(accepted=("lan3",), refused=("lan2",)),
            watch=(ON_LAN2, ON_LAN3),
            hints=(
                f"dial both from carol: {DIAL}",
                "keep the server of step 1 running, bound to the lan3 address",
            ),
        ),
        Step(
            title="bind to every address",
            text="""\
Stop the server of step 1 (Ctrl-C in its terminal, or the pkill below), start it again without
`bind=`, so it listens on 0.0.0.0, and dial both addresses again.""",
            commands=(
                Command("srv", STOP),
                Command("srv", ALL, keeps_running=True),
                Command("carol", DIAL),
            ),
            expect="`ss -tlnp` on srv shows `0.0.0.0:" + str(PORT) + "`; carol prints "
            "`lan2 0` and `lan3 0`.",
            verify=_answers(accepted=("lan2", "lan3"), refused=()),
            watch=(ON_LAN2, ON_LAN3),
            hints=(
                f"restart the server without bind= and dial again: {ALL}",
                "stop the old one first: a TCP listener on one address blocks 0.0.0.0 on the "
                "same port (address already in use)",
            ),
        ),
    ),
    pitfalls="""\
- Binding 0.0.0.0 covers IPv4 only. `nc -l` without -4 may bind IPv6 ([::]), which Linux
  shares with IPv4 unless IPV6_V6ONLY is set: see dual-stack-bind.
- Binding a specific address and 0.0.0.0 on one port at once fails with "address already in
  use" unless both sockets set SO_REUSEPORT, as the image's nc does.
- 127.0.0.1 is an address too: a server bound to it answers from inside srv only.""",
)
