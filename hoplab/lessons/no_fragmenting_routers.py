"""no-fragmenting-routers, by hand: an IPv6 router never fragments. r2 answers a packet too big
for lan3 with ICMPv6 Packet Too Big; alice then fragments herself. Verified from captures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, env, fail
from hoplab.lessons.evidence import PATTERN, arrives_whole, captured, show
from hoplab.lessons.model import Command, Lesson, Step, Watch
from hoplab.lessons.ttl_and_traceroute import V6

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun

MTU = 1280
PACKET_TOO_BIG, ECHO6 = 2, 128
BIG, FITS = 1400, MTU - 40 - 8  # ICMPv6 data: too big for lan3, and the largest that fits
FRAGMENT_HEADER = 44
# Packets of alice's that carry a fragment header (the next header field, byte 6)
SOURCE_FRAGMENTS = Watch("r1", "lan1", f"ip6 and ip6[6] == {FRAGMENT_HEADER}")
LAN3 = Watch("dave", "lan3", f"icmp6 and ip6[64:4] = 0x{PATTERN}")
FIRST = f"ip -6 route flush cache; ping -6 -c 1 -s {BIG} -p {PATTERN} dave"
AGAIN = f"ping -6 -c 1 -s {BIG} -p {PATTERN} dave"
SNUG = f"ping -6 -c 1 -M do -s {FITS} -p {PATTERN} dave"


def _addresses(run: StepRun) -> tuple[str, str]:
    return run.names.fill("{alice.v6}"), run.names.fill("{r2@core.v6}")


def _too_big(run: StepRun) -> Check:
    alice, r2 = _addresses(run)
    if not alice:
        return env("", "a lab with IPv6", "no IPv6 address on alice", "this lesson needs IPv6")
    frames = captured(run, V6.ping)
    answers = [f for f in frames if f.icmp_type == PACKET_TOO_BIG and f.dst_ip == alice]
    expected = f"ICMPv6 Packet Too Big (type 2) from r2 ({r2}) to alice"
    if any(f.src_ip == r2 for f in answers):
        return check("", True, expected, show(answers))
    return fail("", expected, show(frames))


def _alice_cuts(run: StepRun) -> Check:
    alice, _ = _addresses(run)
    pieces = [f for f in captured(run, SOURCE_FRAGMENTS) if f.src_ip == alice]
    expected = f"fragments from alice on lan1, before any router, each at most {MTU} bytes"
    observed = ", ".join(f"{f.ip_len} bytes" for f in pieces[:4]) or "no fragment from alice"
    if len(pieces) >= 2 and all(f.ip_len <= MTU for f in pieces):
        return check("", True, expected, observed)
    return fail("", expected, observed)


def _fits(run: StepRun) -> Check:
    return arrives_whole(run, LAN3, _addresses(run)[0], ECHO6, MTU, FITS)


LESSON = Lesson(
    name="no-fragmenting-routers",
    title="IPv6 routers never fragment",
    why=f"""\
IPv6 took fragmentation away from routers. A packet too big for the next link is dropped, and
the router sends the source an ICMPv6 Packet Too Big with the MTU that would pass. Only the
source may fragment, with a fragment header, for the path MTU it has learnt. Every IPv6 link
carries at least {MTU} bytes (lan3 carries exactly that), so a node that never sends more than
{MTU} needs no discovery at all (RFC 8200 allows that instead of PMTU discovery).""",
    steps=(
        Step(
            title="too big: r2 says so",
            text=f"""\
Make alice forget what she learnt about paths, then ping dave over IPv6 with {BIG} bytes of
data. r2 cannot put {BIG + 48} bytes on lan3 and must not fragment them.""",
            commands=(Command("alice", FIRST),),
            expect=f"`From {{r2@core.v6}} icmp_seq=1 Packet too big: mtu={MTU}`.",
            verify=_too_big,
            watch=(V6.ping,),
            hints=(f"ping from alice: {FIRST}",),
        ),
        Step(
            title="the source fragments",
            text="""\
Ping again. alice now knows the path MTU, so she cuts the packet herself, before it leaves:
the fragments are on lan1 already, and r2 forwards them untouched.""",
            commands=(Command("alice", AGAIN),),
            expect=f"A reply from dave: `{BIG + 8} bytes from dave ...`.",
            verify=_alice_cuts,
            watch=(SOURCE_FRAGMENTS,),
            hints=(
                f"ping again from alice: {AGAIN}",
                "alice must have learnt the MTU first: do step 1 (again), then this one",
            ),
        ),
        Step(
            title="the largest that needs no fragment",
            text=f"""\
{MTU} bytes minus 40 (IPv6 header) minus 8 (ICMPv6 header) leaves {FITS}: that passes every
IPv6 link whole.""",
            commands=(Command("alice", SNUG),),
            expect=f"A reply: `{FITS + 8} bytes from dave ...`.",
            verify=_fits,
            watch=(LAN3,),
            hints=(f"ping from alice: {SNUG}",),
        ),
    ),
    pitfalls="""\
- `ip -6 route flush cache` works in a node, but its IPv4 twin does not (/proc/sys is read-only
  here): IPv4's learnt path MTUs stay for 10 minutes.
- Dropping all ICMPv6 at a firewall breaks this: the Packet Too Big never arrives, and big
  packets vanish.
- Without -4 or -6, ping picks by the name's first address: IPv6 here.""",
)
