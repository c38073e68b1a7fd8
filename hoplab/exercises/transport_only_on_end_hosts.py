"""transport-only-on-end-hosts: routers forward TCP segments without taking part in TCP."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.exercises.base import Cast, Exercise
from hoplab.runtime.needs import client_server

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab, Node
    from hoplab.runtime.pcap import Frame

LESSON = """\
TCP lives only in the two end hosts. They hold the sockets, number the bytes (sequence numbers),
acknowledge them and retransmit what is lost. A router in between works one layer down: it reads
the IP destination, takes one off the TTL and sends the packet on. It never opens a socket for
the flow, and never acknowledges or retransmits anything: TCP's work is not its own. (A router
may still read the ports: one that filters, tracks connections or does NAT does, as the nat
exercise shows. It still holds no socket.)

The kernel's own counters show it. On the router, IpForwDatagrams (packets forwarded) climbs
through a 1 MB transfer while TcpInSegs (TCP segments delivered to this host's TCP) does not
move. `ss` on the router lists no socket for the flow while the sender lists one. And a capture
on both sides of the router shows the same ports and the same sequence numbers going in and
coming out; only the IP header's TTL is one lower (and so its checksum differs). (Between
containers the "packets" can be large: the kernel passes TCP segmentation work along with the
packet, so 1 MB may cross as a few dozen big segments rather than hundreds of small ones. The
router still forwards each as is.)

Evidence: /proc/net/snmp on the router before and after, `ss -tan` on the router and on the
sender while the connection is open, a capture on each of the router's two interfaces on the
path, and the sha256 of what arrived.
"""

PORT = 9182
SIZE = 1024 * 1024

NEEDS = client_server("carol", "dave", routers=1)


def snmp(node: Node) -> dict[str, int]:
    """The node's IP and TCP counters (its own network namespace), as 'IpForwDatagrams': n."""
    lines = node.run(["cat", "/proc/net/snmp"]).out.splitlines()
    counters: dict[str, int] = {}
    for head, vals in zip(lines[::2], lines[1::2], strict=False):
        proto, names = head.split(":", 1)
        for name, val in zip(names.split(), vals.split(":", 1)[1].split(), strict=False):
            counters[proto + name] = int(val)
    return counters


def ports_of(ss_line: str) -> set[str]:
    """The local and peer ports of one `ss -tanH` line."""
    return {end.rsplit(":", 1)[-1] for end in ss_line.split()[3:5]}


def key(f: Frame) -> tuple:
    """What the router must not change: the TCP header fields and the IP addresses."""
    return (*f.four_tuple, f.seq, f.ack, f.tcp_flags, f.payload_len)


def run(lab: Lab, cast: Cast) -> list[Check]:
    from hoplab.runtime.lab import SCRATCH  # here, not at import: the runtime imports docker

    # Set up: carol sends to dave through one router (read from the lab, not assumed).
    src, dst = cast["client"], cast["server"]
    dst_ip = dst.address()
    path = lab.path(src.name, dst_ip)
    router = path[0][0]
    in_net = lab.network_of(path[0][1])
    out_net = lab.network_of(path[1][1]) if len(path) > 1 else lab.network_of(dst_ip)
    release = f"{SCRATCH}/transport-release"
    src.run(["rm", "-f", release])
    before = snmp(router)

    # Run: 1 MB across the router, captured on both of its interfaces; while the connection is
    # still open, look at the sockets on the router and on the sender.
    try:
        with (
            lab.capture(router.name, in_net, f"tcp port {PORT}", f"{in_net}-in") as cin,
            lab.capture(router.name, out_net, f"tcp port {PORT}", f"{out_net}-out") as cout,
        ):
            # The server's accept() waits 5 s: start it once the captures are up, right before
            # the client, so slow capture start-up on a loaded machine cannot eat that time.
            server = dst.start_py("hop_transfer.py", "serve", PORT, 5, ready="listening")
            client = src.start_py(
                "hop_transfer.py", "send", dst_ip, PORT, SIZE, release, 10, ready='"phase"'
            )
            sent = client.json()
            router_ss = router.run(["ss", "-tanH"]).out.splitlines()
            src_ss = src.run(["ss", "-tanH"]).out.splitlines()
            src.run(["touch", release])
            client.wait(3)
            server.wait(3)
    finally:
        src.run(["rm", "-f", release])
    after = snmp(router)
    got = server.json()

    # Collect.
    local = tuple(sent.get("local") or ("?", 0))
    ours = {str(PORT), str(local[1])}
    router_lines = [ln for ln in router_ss if ports_of(ln) & ours]
    flow = (f"{local[0]}:{local[1]}", f"{dst_ip}:{PORT}")
    src_lines = [ln for ln in src_ss if tuple(ln.split()[3:5]) == flow]
    forwarded = after.get("IpForwDatagrams", 0) - before.get("IpForwDatagrams", 0)
    tcp_in = after.get("TcpInSegs", 0) - before.get("TcpInSegs", 0)
    # Each packet is seen entering on one side and leaving on the other, whichever its direction.
    src_ip = src.address()
    pairs = [
        (
            [f for f in cin.frames if f.src_ip == src_ip],
            [f for f in cout.frames if f.src_ip == src_ip],
        ),
        (
            [f for f in cout.frames if f.dst_ip == src_ip],
            [f for f in cin.frames if f.dst_ip == src_ip],
        ),
    ]
    entering = sum(len(a) for a, _ in pairs)
    unmatched, ttl_pairs = 0, Counter[tuple[int, int]]()
    for enter, leave in pairs:
        out_ttl = {key(f): f.ttl for f in leave}
        for f in enter:
            if key(f) in out_ttl:
                ttl_pairs[(f.ttl, out_ttl[key(f)])] += 1
            else:
                unmatched += 1
    data_in = sum(1 for f in pairs[0][0] if f.payload_len)
    evidence_caps = f"{cin.path or in_net}, {cout.path or out_net}"

    # Check.
    return [
        check(
            "the 1 MB arrives whole",
            got.get("bytes") == SIZE and got.get("sha256") == sent.get("sha256"),
            f"{SIZE} bytes, sha256 {str(sent.get('sha256'))[:16]}...",
            f"{got.get('bytes')} bytes, sha256 {str(got.get('sha256'))[:16]}..."
            if "bytes" in got
            else got.get("error") or sent.get("error") or "nothing received",
            evidence=f"{dst.name}: hop_transfer.py serve; {src.name}: hop_transfer.py send",
            hint="the transfer did not complete: is the router up and forwarding?",
        ),
        check(
            f"{router.name} forwarded the flow's packets (IpForwDatagrams rises)",
            entering > 0 and forwarded >= entering,
            f"a rise of at least the {entering} packets of the flow seen entering {router.name}",
            f"IpForwDatagrams {before.get('IpForwDatagrams')} -> {after.get('IpForwDatagrams')}"
            f" (+{forwarded})",
            evidence=f"{router.name}: /proc/net/snmp before and after",
            hint="no rise: the packets did not go through this router, or it did not forward "
            "them (a FORWARD drop, or a proxy answering in its place)",
        ),
        check(
            f"{router.name}'s TCP saw none of it (TcpInSegs does not move)",
            tcp_in == 0,
            "TcpInSegs +0",
            f"TcpInSegs {before.get('TcpInSegs')} -> {after.get('TcpInSegs')} (+{tcp_in})",
            evidence=f"{router.name}: /proc/net/snmp before and after",
            hint="segments delivered to the router's own TCP: something on the router "
            "terminates the connection (a proxy, a REDIRECT rule), so it is an end host now",
        ),
        check(
            f"{router.name} holds no socket for the flow while {src.name} holds one",
            sent.get("phase") == "holding" and bool(src_lines) and not router_lines,
            f"{src.name}: ESTAB {flow[0]} {flow[1]}; "
            f"{router.name}: nothing with port {PORT} or {local[1]}",
            f"{src.name}: {' | '.join(' '.join(ln.split()) for ln in src_lines) or 'none'}; "
            f"{router.name}: {' | '.join(' '.join(ln.split()) for ln in router_lines) or 'none'}",
            evidence=f"ss -tan on {router.name} and {src.name} while the connection was open",
            hint="a socket on the router means it is an endpoint (a proxy); none on the "
            "sender means the connection was not open when looked at",
        ),
        check(
            "ports and sequence numbers are the same on both sides of the router",
            data_in > 0 and unmatched == 0,
            f"every TCP segment entering {router.name} leaves it with the same ports, seq, "
            "ack and length",
            f"{entering - unmatched} of {entering} matched ({data_in} carrying data from "
            f"{src.name})",
            evidence=evidence_caps,
            hint="unmatched segments: something rewrote the TCP header (NAT, a proxy), or "
            "the router dropped them; no segments: the flow did not cross this router",
        ),
        check(
            "the TTL is one lower on the way out",
            bool(ttl_pairs) and all(o == i - 1 for i, o in ttl_pairs),
            "TTL out = TTL in - 1 for every matched segment",
            ", ".join(f"{i} -> {o} ({n}x)" for (i, o), n in sorted(ttl_pairs.items()))
            or "no matched segments",
            evidence=evidence_caps,
            hint="a TTL that does not drop by one means the packet was not simply forwarded "
            "(a proxy sends its own packets with a fresh TTL)",
        ),
    ]


EXERCISE = Exercise(
    name="transport-only-on-end-hosts",
    summary="A router forwards a TCP flow without any socket for it: TCP lives in the end hosts.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
