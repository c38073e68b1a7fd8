"""mtu-and-fragmentation, by hand: lan3 carries at most 1280 bytes. With DF set, r2 refuses a
bigger IPv4 packet and says how big may pass; without DF, r2 cuts it into fragments that dave
puts back together. Verified from captures on lan1 and lan3."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, fail
from hoplab.lessons.evidence import (
    ECHO_REQUEST,
    PATTERN,
    PING_BPF,
    UNREACHABLE,
    arrives_whole,
    captured,
    show,
)
from hoplab.lessons.model import Command, Lesson, Step, Watch

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun

MTU = 1280  # lan3's, in the default lab
FRAG_NEEDED = 4  # the code of ICMP destination unreachable that says "fragmentation needed"
BIG, FITS = 1400, MTU - 20 - 8  # ICMP data sizes: too big for lan3, and the largest that fits
LAN1 = Watch("r1", "lan1", PING_BPF)
# On lan3: the learner's echoes (the first fragment carries the pattern) and every later fragment
FRAGMENTS = "ip[6:2] & 0x1fff != 0"  # a fragment offset: every fragment but the first
LAN3 = Watch("dave", "lan3", f"(icmp and icmp[24:4] = 0x{PATTERN}) or ({FRAGMENTS})")
DF = f"ping -4 -c 1 -M do -s {BIG} -p {PATTERN} {{dave}}"
NO_DF = f"ping -4 -c 1 -M dont -s {BIG} -p {PATTERN} {{dave}}"
WATCH_LAN3 = f"tcpdump -c 3 -ni {{dave@lan3.iface}} -v 'icmp or {FRAGMENTS}'"
SNUG = f"ping -4 -c 1 -M do -s {FITS} -p {PATTERN} {{dave}}"


def _refused(run: StepRun) -> Check:
    r2 = run.names.fill("{r2@core}")
    lan1 = {run.names.fill("{alice}"), run.names.fill("{bob}")}
    frames = captured(run, LAN1)
    errors = [f for f in frames if f.icmp_type == UNREACHABLE and f.dst_ip in lan1]
    expected = f"ICMP fragmentation needed (type 3 code 4) from r2 ({r2}) for your big ping"
    if any(f.src_ip == r2 and f.icmp_code == FRAG_NEEDED for f in errors):
        return check("", True, expected, show(errors))
    sent = [f for f in frames if f.icmp_type == ECHO_REQUEST and f.src_ip in lan1]
    if sent and not sent[0].dont_fragment:
        return fail("", expected, show(sent), hint="DF was not set: use -M do")
    return fail("", expected, show(frames))


def _fragmented_by_r2(run: StepRun) -> Check:
    bob = run.names.fill("{bob}")
    whole = [f for f in captured(run, LAN1) if f.src_ip == bob and f.icmp_type == ECHO_REQUEST]
    pieces = [f for f in captured(run, LAN3) if f.src_ip == bob]
    firsts = [f for f in pieces if f.more_fragments and f.frag_offset == 0]
    rest = [f for f in pieces if f.frag_offset and any(f.ip_id == g.ip_id for g in firsts)]
    expected = (
        f"one {BIG + 28}-byte packet from bob on lan1, and fragments of it on lan3 "
        f"(each at most {MTU} bytes): r2 cut it"
    )
    observed = f"lan1: {[f.ip_len for f in whole]} bytes; lan3: " + ", ".join(
        f"{f.ip_len} bytes at offset {f.frag_offset * 8}" for f in pieces[:4]
    )
    if any(f.ip_len == BIG + 28 for f in whole) and firsts and rest:
        return check("", True, expected, observed)
    if whole and all(f.ip_len <= MTU for f in whole):
        return fail(
            "",
            expected,
            observed,
            hint="bob already cut it himself: he learnt the path MTU (from a -M do ping) less "
            "than 10 minutes ago; send it from another lan1 host that has not",
        )
    return fail("", expected, observed if whole or pieces else show(whole + pieces))


def _fits(run: StepRun) -> Check:
    return arrives_whole(run, LAN3, run.names.fill("{alice}"), ECHO_REQUEST, MTU, FITS)


LESSON = Lesson(
    name="mtu-and-fragmentation",
    title="MTU and fragmentation (IPv4)",
    why=f"""\
Every link has a largest packet it carries, its MTU: 1500 bytes on lan1 and the core, {MTU} on
lan3. When an IPv4 packet is too big for the next link, the router has two choices, and the
packet's Don't Fragment (DF) bit picks one: with DF set it drops the packet and tells the
sender "fragmentation needed" with the MTU that would pass (path MTU discovery); with DF clear
it cuts the packet into fragments, which only the destination puts back together.""",
    steps=(
        Step(
            title="DF set: r2 refuses, and says why",
            text=f"""\
Ping dave (behind lan3) from alice with {BIG} bytes of data and DF set (-M do). {BIG + 28}
bytes do not fit lan3; r2 drops the packet and answers.""",
            commands=(Command("alice", DF),),
            expect=f"`From {{r2@core}} icmp_seq=1 Frag needed and DF set (mtu = {MTU})`.",
            verify=_refused,
            watch=(LAN1,),
            hints=(
                f"ping from alice: {DF}",
                "if ping says `local error: message too long, mtu=1280`, alice already learnt "
                "the path MTU (it stays 10 minutes; /proc/sys is read-only here, so the cache "
                f"cannot be flushed): send it from bob instead, {DF}",
            ),
        ),
        Step(
            title="DF clear: r2 cuts the packet",
            text=f"""\
Send the same from bob, with DF clear (-M dont). bob knows nothing about lan3, so a
{BIG + 28}-byte packet leaves him whole; r2 fragments it onto lan3, and dave reassembles and
answers. Watch lan3 from dave.""",
            commands=(
                Command(
                    "dave", f"tcpdump -c 3 -ni {{dave@lan3.iface}} -v 'icmp or {FRAGMENTS}'", True
                ),
                Command("bob", NO_DF),
            ),
            expect=f"""\
bob gets the reply. dave's tcpdump shows the request in two pieces, `frag (...) flags [+]`
of at most {MTU} bytes, then the rest at a later offset.""",
            verify=_fragmented_by_r2,
            watch=(LAN1, LAN3),
            hints=(f"ping from bob: {NO_DF}",),
        ),
        Step(
            title="the largest that fits",
            text=f"""\
{MTU} bytes minus 20 (IP header) minus 8 (ICMP header) leaves {FITS} bytes of data. With DF
set, that much passes lan3 whole.""",
            commands=(Command("alice", SNUG),),
            expect=f"A reply from dave: `{FITS + 8} bytes from ...`.",
            verify=_fits,
            watch=(LAN3,),
            hints=(f"ping from alice: {SNUG}",),
        ),
    ),
    pitfalls="""\
- A sender remembers a learnt path MTU for 10 minutes: the second DF ping fails at once with
  "local error: message too long" and sends nothing. That is discovery working.
- A lost fragment loses the whole packet: the receiver drops the rest after a timeout.
- Firewalls that drop every ICMP break path MTU discovery: big DF packets vanish silently (a
  "PMTU black hole").""",
)
