"""tcp-recovers-loss, by hand: r1 drops every fifth segment; TCP sends the missing bytes again
and srv gets every byte, while UDP datagrams dropped the same way are simply gone. Verified by
comparing what left alice (lan1, before r1's drop) with what reached srv (lan2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, fail
from hoplab.lessons.evidence import captured, listening
from hoplab.lessons.model import Command, Lesson, Step, Watch

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun

TCP_PORT, UDP_PORT = 8200, 8201  # no exercise uses them; the rules touch only these
BYTES = 300000
COUNTER = f"socat TCP4-LISTEN:{TCP_PORT},fork,reuseaddr SYSTEM:'wc -c'"
DROP = "FORWARD -p {proto} --dport {port} -m statistic --mode nth --every 5 --packet 0 -j DROP"
DROP_TCP = DROP.format(proto="tcp", port=TCP_PORT)
DROP_UDP = DROP.format(proto="udp", port=UDP_PORT)
SEND = f"head -c {BYTES} /dev/zero | nc -4 -N {{srv}} {TCP_PORT}"
DATAGRAMS = f"for i in $(seq 20); do echo $i | nc -4 -u -w0 {{srv}} {UDP_PORT}; done"
TCP_LAN1 = Watch("r1", "lan1", f"tcp port {TCP_PORT}")
TCP_LAN2 = Watch("srv", "lan2", f"tcp port {TCP_PORT}")
UDP_LAN1 = Watch("r1", "lan1", f"udp dst port {UDP_PORT}")
UDP_LAN2 = Watch("srv", "lan2", f"udp dst port {UDP_PORT}")


def _server(run: StepRun) -> Check:
    return listening(run, "srv", ("tcp",), TCP_PORT)


def _recovered(run: StepRun) -> Check:
    alice = run.names.fill("{alice}")
    sent = [f for f in captured(run, TCP_LAN1) if f.src_ip == alice and f.dport == TCP_PORT]
    acks = [f for f in captured(run, TCP_LAN2) if f.dst_ip == alice and f.sport == TCP_PORT]
    expected = f"retransmitted segments on lan1, and srv acknowledging all {BYTES} bytes"
    best = ""
    for port in {f.sport for f in sent}:
        mine = [f for f in sent if f.sport == port]
        syn = next((f for f in mine if f.tcp_flags == "S"), None)
        if syn is None:
            continue
        seqs = [f.seq for f in mine if f.payload_len]
        again = len(seqs) - len(set(seqs))
        acked = max(((f.ack - syn.seq) % 2**32 for f in acks if f.dport == port), default=0)
        best = f"port {port}: {again} segments sent again, {acked - 2 if acked else 0} bytes acked"
        if again and acked >= BYTES + 1:
            return check("", True, expected, best)
    if not sent:
        return fail("", expected, "no segment from alice")
    return fail(
        "",
        expected,
        best or "no connection seen from its start",
        hint=f"was the drop rule in place on r1 while alice sent? (iptables -I {DROP_TCP})",
    )


def _lost(run: StepRun) -> Check:
    alice = run.names.fill("{alice}")
    left = [f for f in captured(run, UDP_LAN1) if f.src_ip == alice]
    arrived = [f for f in captured(run, UDP_LAN2) if f.src_ip == alice]
    expected = "datagrams that left alice and never reached srv, and none sent again"
    observed = f"{len(left)} left alice (lan1), {len(arrived)} reached srv (lan2)"
    if left and len(arrived) < len(left):
        return check("", True, expected, observed)
    if left:
        return fail("", expected, observed, hint=f"add the drop rule on r1 first: {DROP_UDP}")
    return fail("", expected, observed)


LESSON = Lesson(
    name="tcp-recovers-loss",
    title="TCP recovers lost segments; UDP does not",
    why="""\
Networks lose packets. TCP numbers every byte, the receiver acknowledges what arrived, and the
sender sends again what was not acknowledged: the application gets every byte, in order, only a
little later. UDP sends each datagram once; a lost one is gone, and only the application can
notice (or not). Here r1 drops every fifth packet of one port, on purpose, with iptables.""",
    steps=(
        Step(
            title="a server that counts bytes",
            text=f"Start a server on srv port {TCP_PORT} that answers with the bytes it counted.",
            commands=(Command("srv", COUNTER, keeps_running=True),),
            expect=f"`ss -tlnp` on srv shows socat on `0.0.0.0:{TCP_PORT}`.",
            verify=_server,
            hints=(f"start it on srv and leave it running: {COUNTER}",),
        ),
        Step(
            title="lose every fifth segment, get every byte",
            text=f"""\
On r1, drop every fifth segment to port {TCP_PORT}; send {BYTES} bytes from alice; remove the
rule. Some segments never reach srv, yet the count comes back whole.""",
            commands=(
                Command("r1", f"iptables -I {DROP_TCP}"),
                Command("alice", SEND),
                Command("r1", f"iptables -D {DROP_TCP}"),
            ),
            expect=f"`{BYTES}`: every byte arrived, thanks to retransmissions.",
            verify=_recovered,
            watch=(TCP_LAN1, TCP_LAN2),
            hints=(
                f"add the rule on r1 (iptables -I {DROP_TCP}), send from alice ({SEND}), "
                f"then remove it (iptables -D {DROP_TCP})",
            ),
        ),
        Step(
            title="UDP loses them for good",
            text=f"""\
The same for UDP: drop every fifth datagram to port {UDP_PORT}, send twenty, remove the rule.
Nothing is sent again; what r1 dropped is gone.""",
            commands=(
                Command("r1", f"iptables -I {DROP_UDP}"),
                Command("alice", DATAGRAMS),
                Command("r1", f"iptables -D {DROP_UDP}"),
            ),
            expect="No output (UDP does not report loss); hoplab counts 20 sent and 16 arrived.",
            verify=_lost,
            watch=(UDP_LAN1, UDP_LAN2),
            hints=(
                f"add the rule on r1 (iptables -I {DROP_UDP}), send from alice ({DATAGRAMS}), "
                f"then remove it (iptables -D {DROP_UDP})",
            ),
        ),
    ),
    pitfalls="""\
- Remove your DROP rules when done: they stay on r1 until the node restarts, and the next
  exercise on that port would suffer.
- This kernel has no netem, so loss comes from iptables' statistic match: deterministic, every
  n-th packet, not random.
- Retransmission costs time: with heavy loss TCP slows down (its congestion control) but still
  delivers; a UDP application must add its own numbering and resends if it cares.""",
)
