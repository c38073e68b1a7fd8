"""Ladder diagrams: the frames an exercise captured, one lane per node, one arrow per frame.

Each capture saw one segment. The MAC addresses of a frame say which node sent it and which
received it, so frames from every segment's capture join into one picture: the same packet is
matched hop by hop (by IP ID with its transport fields: TCP sequence numbers, ICMP identifier and
sequence), so the reader sees its TTL drop and its MACs change at each router. A packet that
reached a router, whose next segment was captured at that moment, and never appeared there was
dropped by that router; fragments and TCP retransmissions are marked.

Pure: pcap bytes and a Directory in, a Ladder out; svg() draws it with matplotlib.
"""

from __future__ import annotations

import hashlib
import io
import socket
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_address, ip_network
from typing import Any

import dpkt

from hoplab.model.kinds import Kind
from hoplab.runtime.pcap import PROTO_NAMES, TCP_FLAGS, mac_str

MAX_ROWS = 60  # a ladder taller than this is unreadable; the .pcap link has every frame
SAME_FRAME = 0.05  # s: one frame seen by two captures on one segment (retransmits take >= 200 ms)
HOP_GAP = 1.0  # s: a forwarded frame leaves a router well within this
ICMP_NAMES = {
    0: "echo-reply",
    3: "unreachable",
    8: "echo-request",
    11: "time-exceeded",
}
UNREACH = {0: "net", 1: "host", 3: "port", 4: "frag-needed", 13: "prohibited"}
BAD_FRAME = (dpkt.dpkt.Error, ValueError, IndexError, AttributeError, TypeError, struct.error)


@dataclass(frozen=True)
class Directory:
    """Who is who in the lab: the facts a ladder needs besides the frames.

    macs: MAC -> (node, network); ips: address -> node; kinds: node -> Kind;
    subnets: network -> subnet; routes: node -> ((destination, next-hop address), ...).
    """

    macs: Mapping[str, tuple[str, str]]
    ips: Mapping[str, str]
    kinds: Mapping[str, Kind]
    subnets: Mapping[str, IPv4Network | IPv6Network]
    routes: Mapping[str, tuple[tuple[IPv4Network | IPv6Network, IPv4Address], ...]] = field(
        default_factory=dict
    )

    def next_segment(self, node: str, dst: str) -> str | None:
        """The network `node` would send a packet for dst out on: attached, else by route."""
        addr = ip_address(dst)
        mine = [net for (n, net) in self.macs.values() if n == node]
        for net in mine:
            if addr in self.subnets.get(net, ip_network("0.0.0.0/32")):
                return net
        matches = [(d, v) for d, v in self.routes.get(node, ()) if addr in d]
        if not matches:
            return None
        via = max(matches, key=lambda m: m[0].prefixlen)[1]
        return next((net for net in mine if via in self.subnets.get(net, ())), None)


def directory_from_plan(plan: Any, macs: Mapping[str, tuple[str, str]]) -> Directory:
    """From a hoplab.model.plan.Plan plus the MACs read from the running nodes."""
    return Directory(
        macs={m.lower(): v for m, v in macs.items()},
        ips={str(i.address): n.name for n in plan.nodes for i in n.interfaces},
        kinds={n.name: n.kind for n in plan.nodes},
        subnets={n.name: n.subnet for n in plan.networks},
        routes={n.name: tuple((r.dest, r.via) for r in n.routes) for n in plan.nodes},
    )


def directory_from_state(state: Any, macs: Mapping[str, tuple[str, str]]) -> Directory:
    """From a running lab's LabState (labels) plus the MACs read from the running nodes."""

    def route(text: str) -> tuple[IPv4Network | IPv6Network, IPv4Address]:
        dest, via = text.split(" via ")
        return ip_network(dest.strip()), IPv4Address(via.strip())

    return Directory(
        macs={m.lower(): v for m, v in macs.items()},
        ips={a: n.name for n in state.nodes for a in n.addresses.values()},
        kinds={n.name: n.kind for n in state.nodes},
        subnets={k: ip_network(v) for k, v in state.networks.items() if v},
        routes={n.name: tuple(route(r) for r in n.routes) for n in state.nodes},
    )


@dataclass(frozen=True)
class Hop:
    """One captured frame placed on the ladder: who sent it to whom, on which segment."""

    time: float
    capture: str
    segment: str
    sender: str
    receiver: str
    src_mac: str
    dst_mac: str
    src_ip: str
    dst_ip: str
    ttl: int
    proto: str
    what: str  # flags, ICMP type, or fragment
    length: int  # bytes on the wire
    key: tuple
    flow: tuple  # what a TCP retransmission repeats: endpoints, seq, flags, payload length
    fragment: bool = False
    dont_fragment: bool = False
    packet: int = 0  # which packet (numbered 1.. in order of first sight)
    retransmission: bool = False


@dataclass(frozen=True)
class Drop:
    packet: int
    at: str  # the node that never forwarded it
    after: float
    expected_on: str  # the captured segment it should have appeared on
    reason: str


@dataclass(frozen=True)
class Ladder:
    lanes: tuple[str, ...]
    hops: tuple[Hop, ...]
    drops: tuple[Drop, ...]
    captures: tuple[str, ...]
    ignored: int = 0  # frames not IPv4 or not between two lab nodes (ARP, the host's IPv6 RS)

    def packet(self, n: int) -> list[Hop]:
        return [h for h in self.hops if h.packet == n]


# --- reading frames ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Raw:
    time: float
    capture: str
    digest: str
    src_mac: str
    dst_mac: str
    ip: dpkt.ip.IP
    length: int


def _read(name: str, data: bytes) -> tuple[list[_Raw], int]:
    frames: list[_Raw] = []
    ignored = 0
    if not data:
        return frames, 0
    try:
        for ts, buf in dpkt.pcap.Reader(io.BytesIO(data)):
            try:
                eth = dpkt.ethernet.Ethernet(buf)
                ip = eth.data
                if not isinstance(ip, dpkt.ip.IP):
                    ignored += 1
                    continue
                _describe(ip)  # a frame that cannot be described is skipped here, not later
            except BAD_FRAME:
                ignored += 1  # a node's root can put any bytes on the wire
                continue
            digest = hashlib.blake2b(buf, digest_size=8).hexdigest()
            # Captures keep 256 bytes per frame: the wire length comes from the IP header.
            wire = 14 + ip.len
            frames.append(_Raw(ts, name, digest, mac_str(eth.src), mac_str(eth.dst), ip, wire))
    except (ValueError, dpkt.dpkt.NeedData, dpkt.dpkt.UnpackError):
        pass  # a truncated capture gives what could be read, as hoplab.runtime.pcap does
    return frames, ignored


def _describe(ip: dpkt.ip.IP) -> tuple[str, tuple, tuple]:
    """(label, key matching this packet across hops, flow a retransmission repeats)."""
    proto = PROTO_NAMES.get(ip.p, str(ip.p))
    src, dst = socket.inet_ntoa(ip.src), socket.inet_ntoa(ip.dst)
    # MF is left out: a router that fragments sends the packet's head on with MF set.
    base = (ip.p, ip.id, ip.offset)
    l4 = ip.data
    if ip.offset:
        return f"fragment offset {ip.offset * 8}", base + (ip.len,), ()
    if isinstance(l4, dpkt.tcp.TCP):
        flags = "".join(c for bit, c in TCP_FLAGS if l4.flags & bit)
        n = ip.len - ip.hl * 4 - l4.off * 4  # the payload on the wire, not the snapshot
        label = f"TCP {l4.sport}→{l4.dport} [{flags}] seq {l4.seq} ack {l4.ack} len {n}"
        key: tuple[int, ...] = base + (l4.seq, l4.ack, l4.flags, n)
        # NAT rewrites addresses and ports but never sequence numbers: match on those.
        carries = n or l4.flags & (dpkt.tcp.TH_SYN | dpkt.tcp.TH_FIN)
        flow = (src, l4.sport, dst, l4.dport, l4.seq, l4.flags, n) if carries else ()
        return label, key, flow
    if isinstance(l4, dpkt.udp.UDP):
        return f"UDP {l4.sport}→{l4.dport} len {l4.ulen - 8}", base + (l4.ulen,), ()
    if isinstance(l4, dpkt.icmp.ICMP):
        name = ICMP_NAMES.get(l4.type, f"type {l4.type}")
        inner = l4.data
        if isinstance(inner, dpkt.icmp.ICMP.Echo):
            key = base + (l4.type, inner.id, inner.seq)
            return f"ICMP {name} id {inner.id} seq {inner.seq}", key, ()
        quoted = getattr(inner, "data", b"")
        qid = quoted.id if isinstance(quoted, dpkt.ip.IP) else -1
        if l4.type == 3:
            name += f" ({UNREACH.get(l4.code, l4.code)})"
        return f"ICMP {name} about IP ID {qid}", base + (l4.type, l4.code, qid), ()
    return proto.upper(), base, ()


def describe(ip: dpkt.ip.IP) -> tuple[str, tuple, tuple]:
    """(label, key, flow) of one IPv4 packet, as the ladder matches it. The portal's live wire
    panel groups by this same key, so a packet is one packet in both views."""
    return _describe(ip)


# --- building ---------------------------------------------------------------------------------


def build(captures: Iterable[tuple[str, bytes]], where: Directory) -> Ladder:
    """Join captures (name, pcap bytes) into one ladder."""
    raws: list[_Raw] = []
    names: list[str] = []
    ignored = 0
    for name, data in captures:
        frames, skipped = _read(name, data)
        names.append(name)
        raws.extend(frames)
        ignored += skipped
    raws.sort(key=lambda r: r.time)

    hops: list[Hop] = []
    windows: dict[str, list[float]] = {}  # segment -> [first, last] time captured
    seen: dict[tuple[str, str], float] = {}
    for raw in raws:
        sender = where.macs.get(raw.src_mac)
        receiver = where.macs.get(raw.dst_mac)
        if sender is None or receiver is None or sender[1] != receiver[1]:
            ignored += 1
            continue
        segment = sender[1]
        win = windows.setdefault(segment, [raw.time, raw.time])
        win[0], win[1] = min(win[0], raw.time), max(win[1], raw.time)
        last = seen.get((segment, raw.digest))
        if last is not None and raw.time - last < SAME_FRAME:
            continue  # the same frame from a second capture on the same segment
        seen[(segment, raw.digest)] = raw.time
        ip = raw.ip
        what, key, flow = _describe(ip)
        hops.append(
            Hop(
                time=raw.time,
                capture=raw.capture,
                segment=segment,
                sender=sender[0],
                receiver=receiver[0],
                src_mac=raw.src_mac,
                dst_mac=raw.dst_mac,
                src_ip=socket.inet_ntoa(ip.src),
                dst_ip=socket.inet_ntoa(ip.dst),
                ttl=ip.ttl,
                proto=PROTO_NAMES.get(ip.p, str(ip.p)),
                what=what,
                length=raw.length,
                key=key,
                flow=flow,
                fragment=bool(ip.mf or ip.offset),
                dont_fragment=bool(ip.df),
            )
        )
    numbered = _name_quoted(_match(hops))
    drops = _drops(numbered, windows, where)
    return Ladder(_lanes(numbered), tuple(numbered), tuple(drops), tuple(names), ignored)


def _match(hops: list[Hop]) -> list[Hop]:
    """Number packets: a hop continues a packet with the same key that the sender received
    shortly before on another segment; anything else starts a new packet."""
    out: list[Hop] = []
    open_: dict[tuple, list[tuple[int, Hop]]] = {}  # key -> (packet, its latest hop)
    flows: set[tuple] = set()
    count = 0
    for hop in hops:
        chains = open_.setdefault(hop.key, [])
        chain = next(
            (
                i
                for i, (_, last) in enumerate(chains)
                if last.receiver == hop.sender
                and last.segment != hop.segment
                and hop.time - last.time < HOP_GAP
            ),
            None,
        )
        if chain is None:
            count += 1
            retrans = bool(hop.flow) and hop.flow in flows
            if hop.flow:
                flows.add(hop.flow)
            placed = _with(hop, packet=count, retransmission=retrans)
            chains.append((count, placed))
        else:
            n, latest = chains[chain]
            placed = _with(hop, packet=n, retransmission=latest.retransmission)
            chains[chain] = (n, placed)
        out.append(placed)
    return out


def _name_quoted(hops: list[Hop]) -> list[Hop]:
    """An ICMP error quotes the IP ID of the packet it is about: name that packet's number."""
    number: dict[int, int] = {}
    for h in hops:
        if not _is_icmp_error(h):
            number.setdefault(h.key[1], h.packet)
    out = []
    for h in hops:
        n = number.get(h.key[5]) if _is_icmp_error(h) else None
        out.append(_with(h, what=h.what.replace("about IP ID", f"about #{n}, IP ID")) if n else h)
    return out


def _is_icmp_error(hop: Hop) -> bool:
    """ICMP error keys are (proto, id, offset, type, code, quoted IP ID)."""
    return hop.proto == "icmp" and len(hop.key) == 6 and hop.key[3] in (3, 11)


def _with(hop: Hop, **changes: Any) -> Hop:
    return Hop(**(hop.__dict__ | changes))


def _drops(hops: list[Hop], windows: dict[str, list[float]], where: Directory) -> list[Drop]:
    """A packet whose last hop ended at a router that should have sent it on a segment captured
    at that moment, and never did, was dropped there."""
    last: dict[int, Hop] = {}
    for hop in hops:
        last[hop.packet] = hop
    answered = {(h.key[5], h.sender): h.what for h in hops if _is_icmp_error(h)}
    cut = {(h.key[0], h.key[1], h.segment) for h in hops if h.fragment}
    drops = []
    for n, hop in sorted(last.items()):
        at = hop.receiver
        kind = where.kinds.get(at)
        if kind is None or not kind.rules.forwards or where.ips.get(hop.dst_ip) == at:
            continue
        out = where.next_segment(at, hop.dst_ip)
        win = windows.get(out or "")
        if out is None or win is None or not (win[0] - HOP_GAP <= hop.time <= win[1] + HOP_GAP):
            continue
        if not hop.fragment and (hop.key[0], hop.key[1], out) in cut:
            continue  # forwarded as fragments: not lost
        if hop.ttl <= 1:
            reason = f"TTL {hop.ttl}: {at} may not forward it (time exceeded)"
        elif (hop.key[1], at) in answered:
            reason = f"{at} did not forward it; it answered {answered[(hop.key[1], at)]}"
        else:
            reason = f"lost at {at}: never seen on {out}"
        drops.append(Drop(n, at, hop.time, out, reason))
    return drops


def _lanes(hops: list[Hop]) -> tuple[str, ...]:
    """The longest packet path is the spine; other nodes sit beside their neighbour on it."""
    paths: dict[int, list[str]] = {}
    for hop in hops:
        path = paths.setdefault(hop.packet, [hop.sender])
        if path[-1] != hop.sender:
            path.append(hop.sender)
        path.append(hop.receiver)
    if not paths:
        return ()
    spine: list[str] = []
    for path in paths.values():
        unique = list(dict.fromkeys(path))
        if len(unique) > len(spine):
            spine = unique
    lanes = list(spine)
    for hop in hops:
        for node, peer in ((hop.sender, hop.receiver), (hop.receiver, hop.sender)):
            if node in lanes:
                continue
            i = lanes.index(peer) if peer in lanes else len(lanes)
            lanes.insert(i if i < len(lanes) / 2 else i + 1, node)
    return tuple(lanes)


# --- drawing ----------------------------------------------------------------------------------

COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
DROP_COLOUR = "#d62728"


def label(hop: Hop) -> tuple[str, str]:
    """Two lines per arrow: what the packet is, then its addresses on this segment."""
    marks = [
        m for m, on in (("FRAGMENT", hop.fragment), ("RETRANSMISSION", hop.retransmission)) if on
    ]
    df = " · DF" if hop.dont_fragment else ""
    head = f"#{hop.packet} {hop.what} · TTL {hop.ttl}{df} · {hop.length} B"
    if marks:
        head = f"{' '.join(marks)} {head}"
    return head, f"{hop.src_mac} → {hop.dst_mac} · {hop.src_ip} → {hop.dst_ip} · on {hop.segment}"


def window(ladder: Ladder, lead: int = 8) -> tuple[int, int]:
    """Which MAX_ROWS frames to draw: from the start, or from a little before the first drop or
    retransmission when that comes later (a 1 MB transfer loses its 6th packet of many)."""
    total = len(ladder.hops)
    if total <= MAX_ROWS:
        return 0, total
    dropped = {d.packet for d in ladder.drops}
    marked = next(
        (i for i, h in enumerate(ladder.hops) if h.retransmission or h.packet in dropped), 0
    )
    start = min(max(marked - lead, 0), total - MAX_ROWS)
    return start, start + MAX_ROWS


def svg(ladder: Ladder, title: str = "") -> str:
    """A self-contained SVG: text stays text (searchable) in generic fonts, no external refs."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    start, end = window(ladder)
    hops = ladder.hops[start:end]
    drops = {d.packet: d for d in ladder.drops}
    rows: list[tuple[str, Any]] = []
    for hop in hops:
        rows.append(("hop", hop))
        drop = drops.get(hop.packet)
        if drop and hop is ladder.packet(hop.packet)[-1]:
            rows.append(("drop", drop))
    lanes = {name: i for i, name in enumerate(ladder.lanes)}
    # An arrow's label is wider than the arrow: a margin of most of a lane on either side.
    width = 3.2 * max(len(lanes) - 1, 1) + 4.5
    height = 1.5 + 0.55 * len(rows) + (0.3 if len(ladder.hops) > MAX_ROWS else 0)
    with rc_context(
        {"svg.fonttype": "none", "svg.hashsalt": "hoplab", "font.family": "sans-serif"}
    ):
        fig = Figure(figsize=(width, height))
        FigureCanvasSVG(fig)
        ax = fig.add_axes((0.02, 0.02, 0.96, 0.96))
        ax.set_xlim(-0.7, max(len(lanes) - 1, 1) + 0.7)
        ax.set_ylim(-len(rows) - 0.6, 1.45)
        ax.axis("off")
        for name, x in lanes.items():
            ax.plot([x, x], [-len(rows) - 0.3, 0.45], color="#999999", lw=1, zorder=1)
            router = ladder_role(ladder, name)
            ax.text(
                x,
                0.7,
                name,
                ha="center",
                va="center",
                fontsize=10,
                weight="bold",
                bbox={
                    "boxstyle": "round" if router else "square",
                    "fc": "#fde2c4" if router else "#d6e8fa",
                    "ec": "#555555",
                },
            )
        for y, (kind, item) in enumerate(rows, start=1):
            if kind == "drop":
                x = lanes[item.at]
                ax.plot([x], [-y + 0.2], marker="X", ms=12, color=DROP_COLOUR, zorder=3)
                ax.text(
                    x + 0.1,
                    -y + 0.2,
                    f"#{item.packet} DROPPED: {item.reason}",
                    fontsize=8,
                    color=DROP_COLOUR,
                    va="center",
                    weight="bold",
                )
                continue
            hop = item
            x0, x1 = lanes[hop.sender], lanes[hop.receiver]
            colour = COLOURS[(hop.packet - 1) % len(COLOURS)]
            # A line and a head marker: a tenth of the cost of annotate's arrow patches.
            tip = x1 - 0.03 if x1 > x0 else x1 + 0.03
            style = "--" if hop.retransmission else "-"
            ax.plot([x0, tip], [-y, -y], color=colour, lw=1.6, ls=style, zorder=2)
            ax.plot([tip], [-y], marker=">" if x1 > x0 else "<", ms=6, color=colour, zorder=2)
            head, addrs = label(hop)
            mid = (x0 + x1) / 2
            ax.text(mid, -y + 0.28, head, ha="center", fontsize=7.5, color=colour)
            ax.text(mid, -y + 0.1, addrs, ha="center", fontsize=6.5, color="#444444")
        if len(ladder.hops) > MAX_ROWS:
            ax.text(
                -0.65,
                -len(rows) - 0.5,
                f"frames {start + 1}-{end} of {len(ladder.hops)}, from just before the first drop "
                "or retransmission; open the .pcap for all"
                if start
                else f"frames 1-{end} of {len(ladder.hops)}; open the .pcap for all",
                fontsize=8,
                style="italic",
            )
        if title:
            ax.text(-0.65, 1.25, title, fontsize=11, weight="bold", va="center")
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def ladder_role(ladder: Ladder, node: str) -> bool:
    """Routers forward: a node that both received and re-sent the same packet."""
    got = {(h.packet, h.receiver) for h in ladder.hops}
    return any((h.packet, h.sender) in got for h in ladder.hops if h.sender == node)
