"""tcp-recovers-loss: a router drops packets; TCP repairs the stream, UDP shows the holes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.exercises.base import Cast, Exercise
from hoplab.runtime.evidence import network_towards
from hoplab.runtime.needs import client_server

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab, Node

LESSON = """\
Routers are allowed to drop packets, and they do when a queue is full or a rule says so. IP does
not notice and does not repair anything. What happens next is the transport layer's business, on
the end hosts.

TCP numbers every byte. The receiver acknowledges what it got, and the sender sends again what was
not acknowledged. So the application sees a whole, ordered byte stream, and the loss shows only as a
delay and in the sender's retransmission counters (TCP_INFO tcpi_total_retrans on the socket,
TcpRetransSegs in /proc/net/snmp).

UDP sends each datagram once. A dropped datagram is simply gone, and only the application can tell,
for example by numbering its datagrams and looking for gaps.

One surprise: the router counts packets as the kernel hands them over, and with segmentation
offload one such packet can carry dozens of TCP segments. So a handful of drops on the router can
cost dozens of retransmitted segments.

Here r1 drops part of alice's traffic to srv. hoplab uses netem loss where the kernel has it;
otherwise an iptables rule with `-m statistic --mode nth`, which drops exactly every Nth packet of
the flow, so the UDP gaps can be predicted to the datagram.

Evidence: the sha256 of 1 MB on both ends, the retransmission counters before and after, the
sequence numbers srv did not receive, and the drop counters of the rule on r1.
"""

TCP_PORT = 9221
UDP_PORT = 9222
TCP_BYTES = 1_000_000
TCP_EVERY = 6  # nth mode: drop every 6th TCP packet of the flow (never the SYN)
UDP_EVERY = 5
UDP_COUNT = 100
UDP_SIZE = 100  # payload bytes; the IP packet is 20 + 8 + 100
NETEM_LOSS = 0.1  # used where the kernel has netem: random loss

NEEDS = client_server("alice", "srv", routers=1)  # loss on the first router


def run(lab: Lab, cast: Cast) -> list[Check]:
    alice, srv = cast["client"], cast["server"]
    srv_ip = srv.address()
    router, _ = lab.path(alice.name, srv_ip)[0]
    net = network_towards(lab, router, srv_ip)

    # TCP: 1 MB across the lossy router (netem loss, or every TCP_EVERY-th packet of the flow).
    tcp_flow = _flow(alice.address(), srv_ip, "tcp", TCP_PORT)
    # Captured on both sides of the router, so the report's ladder shows drops and resends.
    inside = lab.network_of(lab.path(alice.name, srv_ip)[0][1])
    bpf = f"tcp port {TCP_PORT}"
    with (
        lab.impair(router.name, net, NETEM_LOSS, TCP_EVERY, match=tcp_flow) as tcp_loss,
        lab.capture(router.name, inside, bpf, f"tcp-{inside}-in"),
        lab.capture(router.name, net, bpf, f"tcp-{net}-out"),
    ):
        receiver = srv.start_py("net_loss.py", "tcp-recv", TCP_PORT, ready="listening")
        sent = alice.py("net_loss.py", "tcp-send", srv_ip, TCP_PORT, TCP_BYTES, timeout=30).json()
        receiver.wait(5)
        got = receiver.json()
        tcp_drops = tcp_loss.drops()

    # UDP: numbered datagrams across the same router. The length match spares the short "end"
    # datagram, so the receiver can stop on it without a fixed wait.
    length = 20 + 8 + UDP_SIZE
    udp_flow = _flow(alice.address(), srv_ip, "udp", UDP_PORT) + [
        "-m", "length", "--length", str(length),
    ]  # fmt: skip
    with lab.impair(router.name, net, NETEM_LOSS, UDP_EVERY, match=udp_flow) as udp_loss:
        listener = srv.start_py("net_loss.py", "udp-recv", UDP_PORT, ready="listening")
        alice.py("net_loss.py", "udp-send", srv_ip, UDP_PORT, UDP_COUNT, UDP_SIZE).json()
        listener.wait(5)
        heard = listener.json()
        udp_drops = udp_loss.drops()
    how = tcp_loss.mechanism

    left = _leftovers(router, tcp_loss.iface)
    missing = sorted(set(range(UDP_COUNT)) - set(heard["received"]))
    if tcp_loss.netem:
        expected_missing = "some datagrams (random loss), each listed"
        udp_ok = bool(missing) and len(heard["received"]) + len(missing) == UDP_COUNT
    else:
        wanted = [s for s in range(UDP_COUNT) if s % UDP_EVERY == UDP_EVERY - 1]
        expected_missing = f"every {UDP_EVERY}th: {_seqs(wanted)}"
        udp_ok = missing == wanted
    retrans = sent["retrans_segs_after"] - sent["retrans_segs_before"]
    return [
        check(
            "TCP: 1 MB arrives whole through the lossy router",
            got["bytes"] == TCP_BYTES and got["sha256"] == sent["sha256"] == sent["reply_sha256"],
            f"{TCP_BYTES} bytes, sha256 {sent['sha256'][:16]}...",
            f"{got['bytes']} bytes, sha256 {got['sha256'][:16]}...",
            evidence=f"{alice.name}: net_loss.py tcp-send; {srv.name}: net_loss.py tcp-recv; "
            f"loss: {how}",
            hint="a short or different stream means the connection broke (reset or timeout); "
            "look at the receiver's output",
        ),
        check(
            "TCP: the sender retransmitted what the router dropped",
            sent["tcpi_total_retrans"] > 0 and retrans > 0 and tcp_drops > 0,
            f"router drops > 0, tcpi_total_retrans > 0, TcpRetransSegs rises; loss: {how}",
            f"router dropped {tcp_drops}, tcpi_total_retrans {sent['tcpi_total_retrans']}, "
            f"TcpRetransSegs {sent['retrans_segs_before']} -> {sent['retrans_segs_after']}",
            evidence=f"{alice.name}: TCP_INFO and /proc/net/snmp; loss: {how}",
            hint="no drops means the rule did not match the flow (wrong router, address or "
            "port): check the path with `hoplab status`",
        ),
        check(
            "UDP: the dropped datagrams are gone, and the gaps are listed",
            udp_ok,
            expected_missing,
            f"{len(heard['received'])} of {UDP_COUNT} arrived; missing {_seqs(missing)} "
            f"(router dropped {udp_drops})",
            evidence=f"{srv.name}: net_loss.py udp-recv; loss: {udp_loss.mechanism}",
            hint="nothing missing means the router did not drop (rule not matched); other "
            "gaps mean loss elsewhere on the path",
        ),
        check(
            f"the loss is removed from {router.name} again",
            not left,
            "no drop rule and no netem qdisc",
            ", ".join(left) or "none left",
            evidence=f"{router.name}: iptables -S; tc qdisc show dev {tcp_loss.iface}",
            hint="the exercise must leave the lab as it found it",
        ),
    ]


def _flow(src: str, dst: str, proto: str, port: int) -> list[str]:
    return ["-p", proto, "-s", src, "-d", dst, "--dport", str(port)]


def _leftovers(router: Node, iface: str) -> list[str]:
    """Anything of the impairment still on the router: its tagged rules or a netem qdisc."""
    from hoplab.runtime.lab import IMPAIR_TAG  # here, not at import: the runtime imports docker

    left = [r for r in router.run(["iptables", "-S"]).out.splitlines() if IMPAIR_TAG in r]
    if "netem" in router.run(["tc", "qdisc", "show", "dev", iface]).out:
        left.append(f"netem on {iface}")
    return left


def _seqs(seqs: list[int]) -> str:
    return "[" + ", ".join(map(str, seqs)) + "]"


EXERCISE = Exercise(
    name="tcp-recovers-loss",
    summary="A router drops packets: TCP retransmits and delivers all; UDP shows the gaps.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
