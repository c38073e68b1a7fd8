"""mac-per-hop, by hand: one ping from alice to srv, seen on each of its three segments. The
Ethernet addresses change at every router; the IP addresses stay; the TTL drops by one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, fail
from hoplab.lessons.evidence import ECHO_REQUEST, PING, PING_BPF, captured, show
from hoplab.lessons.model import Command, Lesson, Step, Watch

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun

SEND = Command("alice", f"{PING} {{srv}}")
LAN1, CORE, LAN2 = (
    Watch("r1", "lan1", PING_BPF),
    Watch("r2", "core", PING_BPF),
    Watch("srv", "lan2", PING_BPF),
)
# (watch, the sender's and the receiver's interface on that segment, routers crossed before it)
SEGMENTS = {
    "lan1": (LAN1, "alice@lan1", "r1@lan1", 0),
    "core": (CORE, "r1@core", "r2@core", 1),
    "lan2": (LAN2, "r2@lan2", "srv@lan2", 2),
}


def _segment(network: str):  # noqa: ANN202 - a verify
    watch, sender, receiver, routers = SEGMENTS[network]

    def verify(run: StepRun) -> Check:
        n = run.names
        alice, srv = n.fill("{alice}"), n.fill("{srv}")
        n.warm(sender.split("@")[0], receiver.split("@")[0])
        frames = captured(run, watch)
        pings = [f for f in frames if f.icmp_type == ECHO_REQUEST and f.src_ip == alice]
        src, dst = n.fill(f"{{{sender}.mac}}"), n.fill(f"{{{receiver}.mac}}")
        ttl = 64 - routers
        expected = (
            f"echo requests on {network}: {src} > {dst} (MACs of {sender.split('@')[0]} and "
            f"{receiver.split('@')[0]}), still {alice} > {srv}, ttl {ttl}"
        )
        good = [f for f in pings if (f.src_mac, f.dst_mac, f.dst_ip, f.ttl) == (src, dst, srv, ttl)]
        if good:
            return check("", True, expected, show(good))
        if not pings:
            return fail("", expected, show(frames))
        f = pings[0]
        if f.dst_ip != srv:
            hint = f"your ping went to {f.dst_ip}; ping srv's address {srv}"
        else:
            hint = f"saw {f.src_mac} > {f.dst_mac} ttl {f.ttl}: was it sent from alice?"
        return fail("", expected, show(pings), hint=hint)

    return verify


def _step(network: str, title: str, text: str, expect: str, look: Command) -> Step:
    watch = SEGMENTS[network][0]
    return Step(
        title=title,
        text=text,
        commands=(look, SEND),
        expect=expect,
        verify=_segment(network),
        watch=(watch,),
        hints=(
            f"ping srv from alice with the lesson's pattern: {PING} {{srv}}",
            "keep -4 (names resolve IPv6 first) and -p "
            "686f7021: the check counts only pings that carry it",
            "show the step again (hoplab learn mac-per-hop --step N) and ping once more",
        ),
    )


LESSON = Lesson(
    name="mac-per-hop",
    title="MAC addresses change at every hop, IP addresses do not",
    why="""\
A packet from alice to srv crosses three Ethernet segments: lan1, core and lan2. Ethernet only
reaches the next box on the same wire, so each segment needs a frame of its own, from the
sender's MAC to the next hop's MAC. IP's job is the whole way: the source and destination
addresses ({alice} and {srv}) stay the same on every segment. What a router does change in the
IP header is the TTL (one less) and so the header checksum. You will see the same ping three
times, once per segment, and compare.""",
    steps=(
        _step(
            "lan1",
            "the first segment: alice to r1",
            """\
Ping srv from alice. The ping carries a pattern (-p 686f7021, "hop!") so it can be found in
a capture. Before that, ask alice whose MAC it sends to: the router's, never srv's, which is
not on lan1.""",
            """\
`ip -4 neigh` on alice lists r1 ({r1@lan1}) with MAC {r1@lan1.mac}. On lan1 the echo requests
go from alice's MAC {alice@lan1.mac} to r1's {r1@lan1.mac}, from {alice} to {srv}, TTL 64.""",
            Command("alice", "ip -4 neigh"),
        ),
        _step(
            "core",
            "the core: r1 to r2",
            """\
Watch the core from r2 while alice pings again: tcpdump's -e prints the Ethernet header.""",
            """\
tcpdump on r2 prints `{r1@core.mac} > {r2@core.mac} ... {alice} > {srv}: ICMP echo request`,
ttl 63: new MACs, same IP addresses, one less TTL.""",
            Command("r2", "tcpdump -c 2 -eni {r2@core.iface} -v icmp", keeps_running=True),
        ),
        _step(
            "lan2",
            "the last segment: r2 to srv",
            """\
Watch lan2 from srv itself while alice pings once more.""",
            """\
tcpdump on srv prints `{r2@lan2.mac} > {srv@lan2.mac} ... {alice} > {srv}`, ttl 62: the third
pair of MACs, still the same two IP addresses.""",
            Command("srv", "tcpdump -c 2 -eni {srv@lan2.iface} -v icmp", keeps_running=True),
        ),
    ),
    pitfalls="""\
- `ping srv` without -4 uses IPv6 (names resolve IPv6 first): the frames are then ICMPv6, and
  the MACs are found by neighbour discovery, not ARP.
- tcpdump on a node prints "cksum incorrect" for packets the node sent: checksum offload fills
  them in later, below the capture. They are fine on the wire.
- "The packet is carried on unchanged" is not quite right: every router lowers the TTL and so
  rewrites the IP header checksum; only the addresses (without NAT) stay.""",
)
