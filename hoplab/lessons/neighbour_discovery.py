"""neighbour-discovery, by hand: before a frame can leave, the sender needs the next hop's MAC:
ARP asks for it in IPv4, neighbour solicitations in IPv6, and only ever for the next hop.
Verified from the requests and answers on the segments, read by who sent them (their MACs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, fail
from hoplab.lessons.evidence import PATTERN, captured, show
from hoplab.lessons.model import Command, Lesson, Step, Watch

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun

ARP = 0x0806
SOLICIT, ADVERT = 135, 136
# Solicitations and advertisements, and the learner's own pings (the pattern, as in evidence.py):
# the questions count only in a capture that also holds the ping that caused them, so another
# program's traffic (an exercise's) never stands in for the learner's.
ND_BPF = f"icmp6 and (ip6[40] == 135 or ip6[40] == 136 or ip6[64:4] = 0x{PATTERN})"
# ARP frames about r1's lan1 address: the request names it as target (offset 24), the reply as
# sender (offset 14)
ARP_R1 = Watch(
    "r1",
    "lan1",
    "(arp and (arp[24:4] = 0x{r1@lan1.hex} or arp[14:4] = 0x{r1@lan1.hex})) or "
    f"(icmp and icmp[24:4] = 0x{PATTERN})",
)
ND_LAN1 = Watch("r1", "lan1", ND_BPF)
ND_LAN2 = Watch("srv", "lan2", ND_BPF)
PING4 = f"ping -4 -c 1 -p {PATTERN} {{srv}}"
PING6 = f"ping -6 -c 1 -p {PATTERN} srv"


def _resolved(watch: Watch, asker: str, answerer: str, ipv6: bool):  # noqa: ANN202 - a verify
    """On watch's segment, asker (node@network) asked for a MAC and answerer told it."""

    def verify(run: StepRun) -> Check:
        n = run.names
        n.warm(asker.split("@")[0], answerer.split("@")[0])
        ask_mac, answer_mac = n.fill(f"{{{asker}.mac}}"), n.fill(f"{{{answerer}.mac}}")
        frames = captured(run, watch)
        alice = n.fill("{alice.v6}" if ipv6 else "{alice}")
        pinged = any(f.icmp_type in (8, 128) and f.src_ip == alice for f in frames)
        if ipv6:
            asks = [f for f in frames if f.icmp_type == SOLICIT and f.src_mac == ask_mac]
            answers = [f for f in frames if f.icmp_type == ADVERT and f.src_mac == answer_mac]
            words = "a neighbour solicitation", "a neighbour advertisement"
        else:
            asks = [f for f in frames if f.ethertype == ARP and f.src_mac == ask_mac]
            answers = [
                f
                for f in frames
                if f.ethertype == ARP and f.src_mac == answer_mac and f.dst_mac == ask_mac
            ]
            words = "an ARP request", "an ARP reply"
        who, whom = asker.split("@")[0], answerer.split("@")[0]
        expected = f"{words[0]} from {who} ({ask_mac}), {words[1]} from {whom} ({answer_mac})"
        if asks and answers and pinged:
            return check("", True, expected, show(asks[:1] + answers[:1]))
        if asks and answers:
            return fail(
                "",
                expected + ", caused by your ping from alice",
                show(frames),
                hint="these were caused by other traffic, not by a ping with the lesson's "
                "pattern (-p 686f7021) from alice",
            )
        if frames and not asks:
            return fail(
                "",
                expected,
                show(frames),
                hint=f"the questions seen came from others, not {who}: was its cache "
                "flushed on the node the step names?",
            )
        return fail("", expected, show(frames))

    return verify


LESSON = Lesson(
    name="neighbour-discovery",
    title="Finding the next hop's MAC: ARP and neighbour discovery",
    why="""\
An IP packet travels inside an Ethernet frame, and a frame needs the receiver's MAC address.
The sender knows only an IP address, so it asks on the link: IPv4 broadcasts an ARP request
("who has {r1@lan1}?"), IPv6 sends a neighbour solicitation (ICMPv6 type 135) to a multicast
group; the owner answers, and the answer goes into the neighbour cache (`ip neigh`). It only
ever asks for the *next hop*: alice pings srv through r1, so alice learns r1's MAC and never
srv's; r2, which puts the packet on lan2, asks for srv's.""",
    steps=(
        Step(
            title="ARP for the router, not for srv",
            text="""\
On alice, forget every IPv4 neighbour, then ping srv once and look at the cache again.""",
            commands=(
                Command("alice", "ip -4 neigh flush all"),
                Command("alice", PING4),
                Command("alice", "ip -4 neigh"),
            ),
            expect="""\
`{r1@lan1} dev ... lladdr {r1@lan1.mac} REACHABLE`, and no line for {srv}: alice asked
"who has {r1@lan1}?" and r1 answered.""",
            verify=_resolved(ARP_R1, "alice@lan1", "r1@lan1", ipv6=False),
            watch=(ARP_R1,),
            hints=(
                f"flush, then ping from alice: ip -4 neigh flush all; {PING4}",
                "flush first: with r1 already in the cache alice asks nothing",
            ),
        ),
        Step(
            title="IPv6: a solicitation instead",
            text="""\
The same in IPv6: forget the neighbours, ping srv over IPv6, look at the cache.""",
            commands=(
                Command("alice", "ip -6 neigh flush all"),
                Command("alice", PING6),
                Command("alice", "ip -6 neigh"),
            ),
            expect="""\
r1 ({r1@lan1.v6}, lladdr {r1@lan1.mac}) in the cache, learnt by a solicitation from alice
answered by an advertisement from r1; srv ({srv@lan2.v6}) is not there.""",
            verify=_resolved(ND_LAN1, "alice@lan1", "r1@lan1", ipv6=True),
            watch=(ND_LAN1,),
            hints=(f"flush, then ping from alice: ip -6 neigh flush all; {PING6}",),
        ),
        Step(
            title="the last hop asks for srv",
            text="""\
Who asks for srv's MAC? The node that puts the packet on srv's link: r2. Empty r2's IPv6 cache
and ping srv from alice again.""",
            commands=(
                Command("r2", "ip -6 neigh flush all"),
                Command("alice", PING6),
                Command("r2", "ip -6 neigh"),
            ),
            expect="""\
r2's cache holds srv ({srv@lan2.v6}) with srv's MAC {srv@lan2.mac}: r2 solicited it on lan2,
and srv advertised.""",
            verify=_resolved(ND_LAN2, "r2@lan2", "srv@lan2", ipv6=True),
            watch=(ND_LAN2,),
            hints=(f"flush r2's cache, then ping from alice: {PING6}",),
        ),
    ),
    pitfalls="""\
- An entry stays in the cache for a while (REACHABLE, then STALE): without a flush, a second
  ping asks nothing, and there is nothing to see.
- Some advertisements come unasked: a node that joins announces itself, and Docker's bridge
  sends router solicitations into every lab network. Read by who sent them, not by their count.
- `ip neigh` also lists link-local addresses (fe80::): routers answer from them too.""",
)
