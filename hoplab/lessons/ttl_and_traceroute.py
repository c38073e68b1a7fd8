"""ttl-and-traceroute, by hand: a ping with a TTL too small dies at a router, which says so;
traceroute is that trick repeated. Verified from captures: who sent which ICMP error to alice."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, fail
from hoplab.lessons.evidence import (
    PATTERN,
    PING_BPF,
    TIME_EXCEEDED,
    UNREACHABLE,
    captured,
    show,
)
from hoplab.lessons.model import Command, Lesson, Step, Watch

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun

FIRST_PORT, LAST_PORT = 33434, 33534  # traceroute's UDP probes (its default range)
LAN1 = Watch("r1", "lan1", PING_BPF)
# traceroute's probes, and the errors that quote one (the quoted UDP header's destination port
# sits at offset 30 of the ICMP error: 8 + a 20-byte IP header + 2)
TRACE = Watch(
    "r1",
    "lan1",
    f"(udp and dst portrange {FIRST_PORT}-{LAST_PORT}) or "
    f"(icmp and icmp[30:2] >= {FIRST_PORT} and icmp[30:2] <= {LAST_PORT})",
)


def _dies_at(router: str, ttl: int):  # noqa: ANN202 - a verify
    def verify(run: StepRun) -> Check:
        n = run.names
        alice, answerer = n.fill("{alice}"), n.fill(f"{{{router}}}")
        frames = captured(run, LAN1)
        errors = [f for f in frames if f.icmp_type == TIME_EXCEEDED and f.dst_ip == alice]
        expected = (
            f"a ping sent with ttl {ttl} dies at {router.split('@')[0]}: "
            f"time exceeded from {answerer}"
        )
        good = [f for f in errors if f.src_ip == answerer]
        sent = [f for f in frames if f.icmp_type == 8 and f.src_ip == alice]
        if good and any(f.ttl == ttl for f in sent):
            return check("", True, expected, show(sent[:1] + good))
        if not sent:
            return fail("", expected, show(frames))
        ttls = ", ".join(str(t) for t in sorted({f.ttl for f in sent}))
        replies = [f for f in frames if f.icmp_type == 0]
        if errors:
            hint = f"the error came from {errors[0].src_ip}: your ping left with ttl {ttls}"
        elif replies:
            hint = f"your ping left with ttl {ttls} and srv answered: use -t {ttl}"
        else:
            hint = f"your ping left with ttl {ttls}; use -t {ttl}"
        return fail("", expected, show(frames), hint=hint)

    return verify


def _trace(run: StepRun) -> Check:
    n = run.names
    alice = n.fill("{alice}")
    want = [n.fill("{r1@lan1}"), n.fill("{r2@core}"), n.fill("{srv}")]
    frames = captured(run, TRACE)
    answers = [f for f in frames if f.proto == "icmp" and f.dst_ip == alice]
    probes = [f for f in frames if f.proto == "udp" and f.src_ip == alice]
    got = {
        "r1": any(f.src_ip == want[0] and f.icmp_type == TIME_EXCEEDED for f in answers),
        "r2": any(f.src_ip == want[1] and f.icmp_type == TIME_EXCEEDED for f in answers),
        "srv": any(f.src_ip == want[2] and f.icmp_type == UNREACHABLE for f in answers),
    }
    expected = (
        f"probes from {alice} with ttl 1, 2, 3; time exceeded from {want[0]} and {want[1]}, "
        f"port unreachable from {want[2]}"
    )
    observed = f"probe ttls {sorted({f.ttl for f in probes})}; " + "; ".join(
        f"{f.src_ip} type {f.icmp_type}" for f in answers[:6]
    )
    if all(got.values()):
        return check("", True, expected, observed)
    if not probes:
        return fail("", expected, show(frames))
    missing = [k for k, v in got.items() if not v]
    return fail(
        "",
        expected,
        observed,
        hint=f"no answer from {', '.join(missing)}: routers limit ICMP errors to about one a "
        "second per sender, so wait a second and run traceroute again",
    )


PING1 = f"ping -4 -c 1 -t 1 -p {PATTERN} {{srv}}"
PING2 = f"ping -4 -c 1 -t 2 -p {PATTERN} {{srv}}"
TRACEROUTE = "traceroute -4 -n -q 1 {srv}"

LESSON = Lesson(
    name="ttl-and-traceroute",
    title="TTL and traceroute",
    why="""\
Every IPv4 packet carries a TTL, a hop budget: each router lowers it by one and, when it would
reach zero, drops the packet and sends the sender an ICMP "time exceeded" from its own address.
That stops packets that loop forever, and it lets anyone map a path: send with TTL 1, 2, 3...
and the routers introduce themselves one by one. That is all traceroute does.""",
    steps=(
        Step(
            title="a ping that dies at r1",
            text="""\
From alice, send one ping to srv with a TTL of 1 (-t 1). r1 is the first router: it cannot
forward a packet whose TTL would reach 0.""",
            commands=(Command("alice", PING1),),
            expect="`From {r1@lan1} icmp_seq=1 Time to live exceeded`: r1 answered, not srv.",
            verify=_dies_at("r1@lan1", 1),
            watch=(LAN1,),
            hints=(
                f"ping with ttl 1 from alice: {PING1}",
                "keep -4 and the pattern -p 686f7021: the capture keeps only pings that carry it",
            ),
        ),
        Step(
            title="a ping that dies at r2",
            text="""\
Now TTL 2: r1 lowers it to 1 and forwards it; r2 cannot, and answers from its address on the
core, the side the packet came in on.""",
            commands=(Command("alice", PING2),),
            expect="`From {r2@core} icmp_seq=1 Time to live exceeded`.",
            verify=_dies_at("r2@core", 2),
            watch=(LAN1,),
            hints=(
                f"ping with ttl 2 from alice: {PING2}",
                "wait a second between tries: routers rate-limit their ICMP errors",
            ),
        ),
        Step(
            title="traceroute does it for you",
            text="""\
traceroute sends UDP probes to high ports with TTL 1, 2, 3, ... and lists who answered. The
routers answer "time exceeded"; srv itself answers "port unreachable" (nothing listens on the
probe's port), which tells traceroute it has arrived.""",
            commands=(Command("alice", TRACEROUTE),),
            expect="Three lines: ` 1  {r1@lan1}`, ` 2  {r2@core}`, ` 3  {srv}`.",
            verify=_trace,
            watch=(TRACE,),
            hints=(
                f"run it from alice: {TRACEROUTE}",
                "a line of `*` is a rate-limited router: wait a second and run it again",
            ),
        ),
    ),
    pitfalls="""\
- A second traceroute within a second shows `* * *`: routers limit ICMP errors (about one a
  second per destination, with a small burst). Nothing is broken; wait and retry.
- `traceroute srv` without -4 traces IPv6, where the field is the hop limit and the errors
  are ICMPv6.
- Each router answers from the address of the interface the probe came in on, so r2 shows up
  with its core address, not the lan2 one next to srv.""",
)
