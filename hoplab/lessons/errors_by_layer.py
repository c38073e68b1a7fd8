"""errors-by-layer, by hand: a closed TCP port answers with a RST, a closed UDP port with ICMP
port unreachable, a firewall DROP with silence. Verified from what crossed lan1 at r1."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, fail
from hoplab.lessons.evidence import UNREACHABLE, captured, handshakes, show
from hoplab.lessons.model import Command, Lesson, Step, Watch

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun

TCP_CLOSED, UDP_CLOSED, DROPPED = 7700, 7701, 7702  # nothing listens; no exercise uses them
PORT_UNREACHABLE = 3  # the code of ICMP destination unreachable that says "port"
ROUTERS = 2  # alice -> r1 -> r2 -> srv
RULE = f"INPUT -p tcp --dport {DROPPED} -j DROP"
DIAL_TCP = f"nc -4 -z -w2 {{srv}} {TCP_CLOSED}; echo $?"
SEND_UDP = f"echo hello | nc -4 -u -w1 {{srv}} {UDP_CLOSED}; echo $?"
DIAL_DROPPED = f"nc -4 -z -w3 {{srv}} {DROPPED}; echo $?"
TCP_IN = Watch("r1", "lan1", f"tcp port {TCP_CLOSED}")
# ICMP errors that quote a UDP datagram to UDP_CLOSED (its destination port at offset 30)
UDP_IN = Watch("r1", "lan1", f"(udp port {UDP_CLOSED}) or (icmp and icmp[30:2] = {UDP_CLOSED})")
DROP_IN = Watch("r1", "lan1", f"tcp port {DROPPED}")


def _refused(run: StepRun) -> Check:
    alice, srv = run.names.fill("{alice}"), run.names.fill("{srv}")
    frames = [f for f in captured(run, TCP_IN) if alice in (f.src_ip, f.dst_ip)]
    rsts = handshakes(frames, srv, TCP_CLOSED)["refused"]
    expected = f"a RST from {srv}:{TCP_CLOSED}, ttl 64 - {ROUTERS} routers = {64 - ROUTERS}"
    if any(f.ttl == 64 - ROUTERS for f in rsts):
        return check("", True, expected, show(rsts))
    return fail("", expected, show(frames))


def _unreachable(run: StepRun) -> Check:
    alice, srv = run.names.fill("{alice}"), run.names.fill("{srv}")
    frames = [f for f in captured(run, UDP_IN) if alice in (f.src_ip, f.dst_ip)]
    icmp = [f for f in frames if f.icmp_type == UNREACHABLE and f.dst_ip == alice]
    expected = f"ICMP port unreachable (type 3 code 3) from {srv} to alice"
    if any(f.src_ip == srv and f.icmp_code == PORT_UNREACHABLE for f in icmp):
        return check("", True, expected, show(icmp))
    if icmp:
        return fail(
            "",
            expected,
            show(icmp),
            hint=f"unreachable from {icmp[0].src_ip}, code "
            f"{icmp[0].icmp_code}: send to srv's UDP port {UDP_CLOSED}",
        )
    return fail("", expected, show(frames))


def _silence(run: StepRun) -> Check:
    alice, srv = run.names.fill("{alice}"), run.names.fill("{srv}")
    frames = [f for f in captured(run, DROP_IN) if alice in (f.src_ip, f.dst_ip)]
    shakes = handshakes(frames, srv, DROPPED)
    by_port: dict[int, int] = {}
    for f in shakes["syn"]:
        by_port[f.sport] = by_port.get(f.sport, 0) + 1
    expected = f"alice's SYN to {srv}:{DROPPED} sent again (retransmitted), never answered"
    observed = (
        f"SYNs per client port {by_port}, {len(shakes['accepted'])} SYN-ACK, "
        f"{len(shakes['refused'])} RST"
    )
    if shakes["accepted"] or shakes["refused"]:
        return fail(
            "",
            expected,
            observed,
            hint="srv answered: the DROP rule was not in place while alice dialled "
            f"(iptables -I {RULE} on srv first)",
        )
    if any(n >= 2 for n in by_port.values()):
        return check("", True, expected, observed)
    if by_port:
        return fail("", expected, observed, hint="give it time: -w3 waits for a retransmission")
    return fail("", expected, observed)


LESSON = Lesson(
    name="errors-by-layer",
    title="Who said no, and how",
    why="""\
A failed connection is not one thing. A closed TCP port is refused by the far host's transport
layer (a RST); a closed UDP port by its IP layer's helper, ICMP (port unreachable); a firewall
that drops says nothing at all, and the caller waits until its own timeout. Each answer comes
from somewhere, and the packet tells you where: its source address, and its TTL, lowered once
per router on its way back. In the house picture: a locked door (RST), a note "nobody lives
here" (ICMP), or a house that never answers (DROP); the picture breaks because a silent house
and no house at all look the same from the street.""",
    steps=(
        Step(
            title="a closed TCP port",
            text=f"From alice, dial srv's TCP port {TCP_CLOSED}, where nothing listens.",
            commands=(Command("alice", DIAL_TCP),),
            expect=f"""\
`1` at once. On the wire: a RST from {{srv}} that arrives with TTL {64 - ROUTERS}: it crossed
two routers, so it really came from srv.""",
            verify=_refused,
            watch=(TCP_IN,),
            hints=(f"dial from alice: {DIAL_TCP}",),
        ),
        Step(
            title="a closed UDP port",
            text=f"""\
Send a datagram from alice to srv's UDP port {UDP_CLOSED}. UDP has no handshake to refuse, so
srv's kernel answers with ICMP "port unreachable".""",
            commands=(Command("alice", SEND_UDP),),
            expect="`1` (nc's connected UDP socket got ECONNREFUSED from the ICMP), or `0` if "
            "nc ended before it came back: the ICMP is on the wire either way.",
            verify=_unreachable,
            watch=(UDP_IN,),
            hints=(f"send it from alice: {SEND_UDP}",),
        ),
        Step(
            title="a firewall that drops",
            text=f"""\
On srv, drop every TCP segment to port {DROPPED}; dial it from alice; then remove the rule.
No answer comes at all: alice's kernel sends the SYN again after a second, and nc gives up.""",
            commands=(
                Command("srv", f"iptables -I {RULE}"),
                Command("alice", DIAL_DROPPED),
                Command("srv", f"iptables -D {RULE}"),
            ),
            expect="`1` after 3 seconds, not at once: silence, then alice's own timeout.",
            verify=_silence,
            watch=(DROP_IN,),
            hints=(
                f"add the rule on srv (iptables -I {RULE}), dial from alice ({DIAL_DROPPED}), "
                f"then remove it (iptables -D {RULE})",
            ),
        ),
    ),
    pitfalls=f"""\
- Remove the DROP rule when done (iptables -D {RULE} on srv): it stays until the node restarts.
- A UDP sender that is not connected never hears of the ICMP: only a connected UDP socket (as
  nc's) gets ECONNREFUSED, on its next call.
- Routers limit ICMP errors (about one a second per destination): a quick second try may get
  silence where the first got "unreachable".""",
)
