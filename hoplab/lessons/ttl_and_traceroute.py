"""ttl-and-traceroute, by hand: a ping with a TTL too small dies at a router, which says so;
traceroute is that trick repeated. Verified from captures: who sent which ICMP error to alice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hoplab.checks import Check, check, env, fail
from hoplab.lessons.evidence import PATTERN, PING_BPF, captured, show
from hoplab.lessons.model import Command, Lesson, Step, Watch

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun

FIRST_PORT, LAST_PORT = 33434, 33534  # traceroute's UDP probes (its default range)


@dataclass(frozen=True)
class Family:
    """What differs between IPv4's TTL and IPv6's hop limit, for the verifies both share
    (hop-limit is this lesson in IPv6)."""

    suffix: str  # the template attribute of an address in this family: "" or ".v6"
    proto: str  # the ICMP as pcap.Frame names it
    echo: int
    reply: int
    exceeded: int
    unreachable: int
    ping: Watch
    trace: Watch


# The trace filters keep traceroute's probes and the errors that quote one: the quoted UDP
# destination port sits at offset 30 of an ICMP error (8 + a 20-byte IP header + 2), at byte 90
# of an IPv6 packet carrying an ICMPv6 error (40 + 8 + 40 + 2). The IPv6 ping filter finds the
# pattern at 64 (40 + 8 + ping's 16-byte timestamp) of an echo and 112 of an error quoting one.
V4 = Family(
    "",
    "icmp",
    8,
    0,
    11,
    3,
    Watch("r1", "lan1", PING_BPF),
    Watch(
        "r1",
        "lan1",
        f"(udp and dst portrange {FIRST_PORT}-{LAST_PORT}) or "
        f"(icmp and icmp[30:2] >= {FIRST_PORT} and icmp[30:2] <= {LAST_PORT})",
    ),
)
V6 = Family(
    ".v6",
    "icmp6",
    128,
    129,
    3,
    1,
    Watch("r1", "lan1", f"icmp6 and (ip6[64:4] = 0x{PATTERN} or ip6[112:4] = 0x{PATTERN})"),
    Watch(
        "r1",
        "lan1",
        f"(ip6 and udp and dst portrange {FIRST_PORT}-{LAST_PORT}) or "
        f"(icmp6 and ip6[90:2] >= {FIRST_PORT} and ip6[90:2] <= {LAST_PORT})",
    ),
)
LAN1, TRACE = V4.ping, V4.trace


def addresses(run: StepRun, family: Family, *where: str) -> list[str]:
    return [run.names.fill(f"{{{w}{family.suffix}}}") for w in where]


def dies_at(family: Family, router: str, ttl: int):  # noqa: ANN202 - a verify
    """A ping from alice sent with ttl (hop limit) dies at router, which answers alice."""

    def verify(run: StepRun) -> Check:
        alice, answerer = addresses(run, family, "alice", router)
        if not answerer:
            return env("", "a lab with IPv6", "no IPv6 address", "this lesson needs IPv6")
        frames = captured(run, family.ping)
        errors = [f for f in frames if f.icmp_type == family.exceeded and f.dst_ip == alice]
        expected = (
            f"a ping sent with ttl {ttl} dies at {router.split('@')[0]}: "
            f"time exceeded from {answerer}"
        )
        good = [f for f in errors if f.src_ip == answerer]
        sent = [f for f in frames if f.icmp_type == family.echo and f.src_ip == alice]
        if good and any(f.ttl == ttl for f in sent):
            return check("", True, expected, show(sent[:1] + good))
        if not sent:
            return fail("", expected, show(frames))
        ttls = ", ".join(str(t) for t in sorted({f.ttl for f in sent}))
        replies = [f for f in frames if f.icmp_type == family.reply]
        if errors:
            hint = f"the error came from {errors[0].src_ip}: your ping left with ttl {ttls}"
        elif replies:
            hint = f"your ping left with ttl {ttls} and srv answered: use -t {ttl}"
        else:
            hint = f"your ping left with ttl {ttls}; use -t {ttl}"
        return fail("", expected, show(frames), hint=hint)

    return verify


def traced(family: Family):  # noqa: ANN202 - a verify
    """traceroute from alice: time exceeded from r1 and r2, port unreachable from srv."""

    def verify(run: StepRun) -> Check:
        alice, *want = addresses(run, family, "alice", "r1@lan1", "r2@core", "srv")
        frames = captured(run, family.trace)
        answers = [f for f in frames if f.proto == family.proto and f.dst_ip == alice]
        probes = [f for f in frames if f.proto == "udp" and f.src_ip == alice]
        kinds = (family.exceeded, family.exceeded, family.unreachable)
        got = {
            name: any(f.src_ip == addr and f.icmp_type == kind for f in answers)
            for name, addr, kind in zip(("r1", "r2", "srv"), want, kinds, strict=True)
        }
        expected = (
            f"probes from {alice} with ttl 1, 2, 3; time exceeded from {want[0]} and "
            f"{want[1]}, port unreachable from {want[2]}"
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
            hint=f"no answer from {', '.join(missing)}: routers limit ICMP errors to about one "
            "a second per sender, so wait a second and run traceroute again",
        )

    return verify


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
            verify=dies_at(V4, "r1@lan1", 1),
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
            verify=dies_at(V4, "r2@core", 2),
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
            verify=traced(V4),
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
