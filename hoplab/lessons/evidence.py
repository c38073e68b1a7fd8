"""Verifies shared by the lessons: servers and connections read from the learner's own sockets,
ping frames read from a step's captures. Each returns a Check; a FAIL without a hint means "not
done" (hoplab.lessons.run then gives the step's hints in turn), one with a hint names what was
seen instead."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, fail
from hoplab.lessons import wire
from hoplab.lessons.sockets import learner_sockets, listeners, seen

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun, Watch
    from hoplab.runtime.pcap import Frame

# The payload pattern lesson pings carry (`ping -p 686f7021`, "hop!"): captures keep only frames
# that carry it, so the learner's pings are told from any other. ICMP data starts with ping's
# 16-byte timestamp, so the pattern sits at offset 24 of an echo, and at 52 of an error that
# quotes one (8 + a 20-byte IP header + 8 + 16).
PATTERN = "686f7021"
PING_BPF = f"icmp and (icmp[24:4] = 0x{PATTERN} or icmp[52:4] = 0x{PATTERN})"
PING = f"ping -4 -c 3 -p {PATTERN}"
ECHO_REQUEST, ECHO_REPLY, UNREACHABLE, TIME_EXCEEDED = 8, 0, 3, 11


def listening(run: StepRun, node: str, protos: tuple[str, ...], port: int) -> Check:
    """The learner's programs on node listen on port in each of protos (tcp, udp)."""
    socks = learner_sockets(run.lab.node(node))
    servers = [s for proto in ("tcp", "udp") for s in listeners(socks, proto)]
    missing = [p for p in protos if not any(s.proto == p and s.port == port for s in servers)]
    want = " and ".join(f"{p} port {port}" for p in protos)
    observed = seen(servers) if servers else seen(socks)
    if not missing:
        return check(
            "", True, f"{node}: your server on {want}", seen([s for s in servers if s.port == port])
        )
    if servers:
        return fail(
            "",
            f"{node}: your server on {want}",
            observed,
            hint=f"nothing of yours listens on {' and '.join(missing)} {port} on {node}; what "
            f"listens is {seen(servers)}: check the port number and the protocol (TCP4-LISTEN "
            "is TCP, UDP4-RECV is UDP)",
        )
    return fail("", f"{node}: your server on {want}", observed)


def connections(run: StepRun, node: str, port: int, peers: dict[str, int]) -> Check:
    """The learner's connections on node's port, at one moment: at least peers[address] from
    each address, each with a port of its own (so as many distinct 4-tuples)."""
    socks = [s for s in learner_sockets(run.lab.node(node)) if s.proto == "tcp"]
    here = [s for s in socks if s.state == "ESTAB" and s.port == port]
    count: dict[str, set[str]] = {}
    for s in here:
        addr = s.peer.rsplit(":", 1)[0]
        count.setdefault(addr, set()).add(s.peer)
    want = ", ".join(f"{n} from {a}" for a, n in peers.items())
    expected = f"{node}:{port} with connections at once: {want}"
    observed = seen(here) if here else seen(socks)
    ok = all(len(count.get(a, ())) >= n for a, n in peers.items())
    strangers = [a for a in count if a not in peers]
    if ok or not strangers:  # missing ones: not done (yet), the step's hints say what to type
        return check("", ok, expected, observed)
    ipv6 = any(":" in a.strip("[]") for a in strangers)
    why = "IPv6 (names resolve IPv6 first): add -4 to nc" if ipv6 else "not a node the step names"
    return fail("", expected, observed, hint=f"connections came from {', '.join(strangers)}: {why}")


def captured(run: StepRun, watch: Watch) -> list[Frame]:
    return wire.frames(run, watch)


def show(frames: list[Frame], limit: int = 4) -> str:
    """A few frames in tcpdump's words, for `observed`."""
    text = [
        f"{f.src_mac} > {f.dst_mac} "
        + (
            f"{f.src_ip} > {f.dst_ip} ttl {f.ttl} {f.proto}"
            + (f" type {f.icmp_type}" if f.icmp_type >= 0 else f" port {f.dport}")
            if f.src_ip
            else f"ethertype 0x{f.ethertype:04x}"
        )
        for f in frames[:limit]
    ]
    more = len(frames) - limit
    return "; ".join(text) + (f" (+{more} more)" if more > 0 else "") if text else "no frames"


def handshakes(frames: list[Frame], server: str, port: int) -> dict[str, list[Frame]]:
    """TCP opening segments towards (server, port), sorted by what the server said: "syn" (the
    client's SYNs), "accepted" (SYN-ACK back) and "refused" (RST back)."""
    out: dict[str, list[Frame]] = {"syn": [], "accepted": [], "refused": []}
    for f in frames:
        if f.proto != "tcp":
            continue
        if f.dst_ip == server and f.dport == port and f.tcp_flags == "S":
            out["syn"].append(f)
        elif f.src_ip == server and f.sport == port and "S" in f.tcp_flags and "A" in f.tcp_flags:
            out["accepted"].append(f)
        elif f.src_ip == server and f.sport == port and "R" in f.tcp_flags:
            out["refused"].append(f)
    return out


def unix_socket(run: StepRun, node: str, state: str, path: str) -> Check:
    """A Unix stream socket of the learner's on node, in state, named path (@name: abstract)."""
    socks = [s for s in learner_sockets(run.lab.node(node), "-x") if s.proto == "u_str"]
    expected = f"{node}: your Unix stream socket {path} in {state}"
    right = [s for s in socks if s.state == state and s.local == path]
    if right:
        return check("", True, expected, seen(right))
    named = [s for s in socks if s.local != "*"]
    if named and state == "LISTEN":
        return fail("", expected, seen(named), hint=f"yours is named {named[0].local}, not {path}")
    return fail("", expected, seen(named or socks))


def arrives_whole(
    run: StepRun, watch: Watch, sender: str, echo: int, size: int, data: int
) -> Check:
    """The sender's echo request (ICMP type echo) on watch's segment, size bytes long and not a
    fragment: the largest packet that fits the link's MTU passed whole."""
    echoes = [f for f in captured(run, watch) if f.src_ip == sender and f.icmp_type == echo]
    expected = f"your echo on {watch.network} whole: {size} bytes, not a fragment"
    good = [f for f in echoes if f.ip_len == size and not f.more_fragments]
    if good:
        return check("", True, expected, show(good))
    if echoes:
        return fail("", expected, show(echoes), hint=f"send {data} bytes of data: -s {data}")
    return fail("", expected, f"no echo from {sender} on {watch.network}")
