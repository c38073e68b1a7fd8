"""hop-limit, by hand: ttl-and-traceroute in IPv6, where the TTL is called the hop limit and the
errors are ICMPv6. The verifies are ttl-and-traceroute's, given the IPv6 family."""

from __future__ import annotations

from hoplab.lessons.evidence import PATTERN
from hoplab.lessons.model import Command, Lesson, Step
from hoplab.lessons.ttl_and_traceroute import V6, dies_at, traced

PING1 = f"ping -6 -c 1 -t 1 -p {PATTERN} srv"
PING2 = f"ping -6 -c 1 -t 2 -p {PATTERN} srv"
TRACEROUTE = "traceroute -6 -n -q 1 srv"

LESSON = Lesson(
    name="hop-limit",
    title="IPv6's hop limit",
    why="""\
IPv6 keeps IPv4's hop budget under an honest name: the hop limit. Every router lowers it by
one, and one that would send it at zero drops the packet and answers with ICMPv6 "time
exceeded" (type 3) from its own IPv6 address. Unlike IPv4, IPv6 has no header checksum, so a
router changes the hop limit and nothing else in the header. Names resolve IPv6 first here, so
`ping srv` is already IPv6; -6 says so.""",
    steps=(
        Step(
            title="a ping that dies at r1",
            text="From alice, ping srv over IPv6 with a hop limit of 1 (-t sets it).",
            commands=(Command("alice", PING1),),
            expect="`From {r1@lan1.v6} icmp_seq=1 Time exceeded: Hop limit`.",
            verify=dies_at(V6, "r1@lan1", 1),
            watch=(V6.ping,),
            hints=(
                f"ping with hop limit 1 from alice: {PING1}",
                "keep the pattern -p 686f7021: the capture keeps only pings that carry it",
            ),
        ),
        Step(
            title="a ping that dies at r2",
            text="Hop limit 2: r1 forwards with 1 left, r2 answers from its core address.",
            commands=(Command("alice", PING2),),
            expect="`From {r2@core.v6} icmp_seq=1 Time exceeded: Hop limit`.",
            verify=dies_at(V6, "r2@core", 2),
            watch=(V6.ping,),
            hints=(
                f"ping with hop limit 2 from alice: {PING2}",
                "wait a second between tries: routers rate-limit their ICMPv6 errors",
            ),
        ),
        Step(
            title="traceroute over IPv6",
            text="traceroute -6 does the same with UDP probes; srv ends it with port unreachable.",
            commands=(Command("alice", TRACEROUTE),),
            expect="` 1  {r1@lan1.v6}`, ` 2  {r2@core.v6}`, ` 3  {srv@lan2.v6}`.",
            verify=traced(V6),
            watch=(V6.trace,),
            hints=(
                f"run it from alice: {TRACEROUTE}",
                "a line of `*` is a rate-limited router: wait a second and run it again",
            ),
        ),
    ),
    pitfalls="""\
- ICMPv6 is not optional as ICMP sometimes is: neighbour discovery and path MTU discovery run
  on it, so a firewall that drops all ICMPv6 breaks IPv6 itself.
- A second traceroute within a second shows `* * *` (ICMPv6 rate limits), as in IPv4.
- `ping -t` is the TTL in IPv4 and the hop limit in IPv6: the same option, two names.""",
)
