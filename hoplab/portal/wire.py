"""The wire panel: frames crossing the participant's segments, live, grouped packet by packet.

A page opens /ws/wire (token as subprotocol, Origin checked, like the terminals) and sends
`{"watch": [segments], "filter": BPF}`. Each segment is captured on its bridge by a tap that
hoplab owns (hoplab.engine.wiretap): outside the participant's nodes, so their root can neither
fool nor slow the capture, and only their own lab's segments can be named. Frames are parsed
here with dpkt and sent as JSON; the same packet seen on several segments gets one group number,
by the ladder's own matching key (hoplab.draw.ladder.describe) for IPv4 and by describe6 for
IPv6, so its TTL (hop limit) drop and MAC changes read hop by hop.

Bounded on every side: MAX_SEGMENTS taps and one wire per participant (a second page takes it
over); one watch request per WATCH_GAP per participant (taps are containers); RATE frames a
second per participant (the excess is counted from the pcap record header, unparsed, and
shown); a capture filter always (DEFAULT_FILTER, or the learner's, checked); the taps' CPU and
memory capped by the engine; and every tap removed when the websocket goes (page left, reload,
revoked link, portal stopped). No call goes into a node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import dpkt
from aiohttp import web

from hoplab.draw.ladder import BAD_FRAME, HOP_GAP, ICMP_NAMES, describe
from hoplab.engine.interface import EngineAPI
from hoplab.portal.messages import objects
from hoplab.runtime.pcap import PROTO_NAMES, TCP_FLAGS, mac_str

MAX_SEGMENTS = 4  # the default lab's four networks at once
RATE = 200  # frames a second per participant, after a burst of as many
MAX_FILTER = 200  # characters of a learner's capture filter
# Everything IP, without the IPv6 neighbour discovery the host's bridges keep sending.
DEFAULT_FILTER = "ip or (ip6 and not (icmp6 and ip6[40] >= 133 and ip6[40] <= 137))"
# A BPF expression's words, numbers, brackets and operators; no quotes, no backslashes.
FILTER_CHARS = re.compile(r"[A-Za-z0-9 .:/()\[\]&|!=<>+*-]*")
OPTION = re.compile(r"(^|\s)-[A-Za-z-]")  # a tcpdump option (-i eth0), not arithmetic (len - 20)
WATCH_GAP = 2.0  # seconds between one participant's watch requests: taps are containers
STATS_EVERY = 1.0  # seconds between the dropped-count updates (and revoked-link checks)
MAX_RECORD = 65535  # a pcap record longer than this is a broken stream, not a frame
ICMP6_NAMES = {1: "unreachable", 2: "packet-too-big", 3: "time-exceeded", 128: "echo-request"}
ICMP6_NAMES |= {129: "echo-reply", 133: "router-solicit", 135: "neighbour-solicit"}
ICMP6_NAMES |= {134: "router-advert", 136: "neighbour-advert"}
MAX_GROUPS = 4096  # keys kept for matching: older ones than HOP_GAP are dropped first
PAYLOAD_KEY = 48  # bytes of an IPv6 payload that tell packets apart when no number does


class WireError(Exception):
    """A request the wire cannot serve: what, and how to mend it (shown in the panel)."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def check_filter(text: object) -> str:
    """The learner's capture filter, or DEFAULT_FILTER for none; a bad one is refused here.

    The tap passes it to tcpdump as one argument after `--`, so it can only narrow what the
    bridge shows; this check keeps it to BPF's alphabet, and tcpdump's own errors come back."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return DEFAULT_FILTER
    if (
        not isinstance(text, str)
        or len(text) > MAX_FILTER
        or not FILTER_CHARS.fullmatch(text)
        or OPTION.search(text)
    ):
        raise WireError(
            "the capture filter is not a tcpdump filter this panel accepts",
            f"at most {MAX_FILTER} characters of letters, digits, spaces and . : / ( ) [ ] & | "
            "! = < > + * -, and no options (-i): only a filter; e.g. icmp, or tcp port 80",
        )
    return text.strip()


def check_segments(wanted: object, networks: dict[str, str]) -> list[str]:
    """The segments named, all of the participant's own lab, at most MAX_SEGMENTS."""
    if not isinstance(wanted, list) or not all(isinstance(s, str) for s in wanted):
        raise WireError("name the segments as a list", 'e.g. {"watch": ["core", "lan2"]}')
    picked = list(dict.fromkeys(wanted))
    if not picked or len(picked) > MAX_SEGMENTS:
        raise WireError(
            f"watch 1 to {MAX_SEGMENTS} segments, not {len(picked)}",
            "pick fewer segments: the wire shows at most " + str(MAX_SEGMENTS),
        )
    unknown = [s for s in picked if s not in networks]
    if unknown:
        raise WireError(
            f"your lab has no segment {', '.join(map(repr, unknown))}",
            "one of: " + ", ".join(sorted(networks)),
        )
    return picked


# --- reading a tap's stream ---------------------------------------------------------------------


class Demux:
    """Docker's attach stream (no TTY): 8-byte headers (stream, 0, 0, 0, length), then data."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out = []
        while len(self.buf) >= 8:
            kind, size = self.buf[0], struct.unpack(">I", self.buf[4:8])[0]
            if len(self.buf) < 8 + size:
                break
            out.append((kind, self.buf[8 : 8 + size]))
            self.buf = self.buf[8 + size :]
        return out


class Pcap:
    """pcap as it streams: a 24-byte file header, then records of a 16-byte header and data."""

    def __init__(self) -> None:
        self.buf = b""
        self.order = ""  # "<" or ">" once the header is read
        self.scale = 1e-6  # microseconds, or nanoseconds for the a1b23c4d magic

    def feed(self, data: bytes) -> list[tuple[float, int, bytes]]:
        """(time, length on the wire, captured bytes) of each whole record fed so far."""
        self.buf += data
        if not self.order:
            if len(self.buf) < 24:
                return []
            magic = self.buf[:4]
            for order in "<>":
                value = struct.unpack(order + "I", magic)[0]
                if value in (0xA1B2C3D4, 0xA1B23C4D):
                    self.order, self.scale = order, 1e-9 if value == 0xA1B23C4D else 1e-6
            if not self.order:
                raise ValueError("the capture is not pcap")
            self.buf = self.buf[24:]
        out = []
        head = struct.Struct(self.order + "IIII")
        while len(self.buf) >= 16:
            sec, frac, caplen, wire = head.unpack_from(self.buf)
            if caplen > MAX_RECORD:
                raise ValueError(f"a pcap record of {caplen} bytes")
            if len(self.buf) < 16 + caplen:
                break
            out.append((sec + frac * self.scale, wire, self.buf[16 : 16 + caplen]))
            self.buf = self.buf[16 + caplen :]
        return out


# --- frames -------------------------------------------------------------------------------------


@dataclass
class Groups:
    """Group numbers by the packet's key: a key seen within HOP_GAP on segments this one is not
    among is the same packet one hop on; anything else (a segment it already crossed, or too
    late) is a new packet. A packet crosses each segment once, so a second identical IPv6
    datagram (no IP ID tells them apart) starts a group of its own."""

    last: dict[tuple, tuple[int, frozenset[str], float]] = field(default_factory=dict)
    count: int = 0

    def number(self, key: tuple | None, segment: str, at: float) -> int:
        seen = self.last.get(key) if key is not None else None
        if seen is not None and segment not in seen[1] and abs(at - seen[2]) < HOP_GAP:
            group, crossed = seen[0], seen[1] | {segment}
        else:
            self.count += 1
            group, crossed = self.count, frozenset((segment,))
        if key is not None:
            self.last[key] = (group, crossed, at)
            if len(self.last) > MAX_GROUPS:
                self.last = {k: v for k, v in self.last.items() if at - v[2] < HOP_GAP}
                while len(self.last) > MAX_GROUPS:  # a flood of fresh keys: oldest first
                    self.last.pop(next(iter(self.last)))
        return group


def frame(at: float, segment: str, wire: int, data: bytes, groups: Groups) -> dict[str, Any]:
    """One captured frame as the panel shows it. Whatever a node's root put on the wire comes
    out as a frame with the fields that could be read, never an error."""
    out: dict[str, Any] = {"t": round(at, 6), "seg": segment, "len": wire}
    key: tuple | None = None
    try:
        eth = dpkt.ethernet.Ethernet(data)
        out["smac"], out["dmac"] = mac_str(eth.src), mac_str(eth.dst)
        ip = eth.data
        if isinstance(ip, dpkt.ip.IP):
            out |= {"src": socket.inet_ntoa(ip.src), "dst": socket.inet_ntoa(ip.dst)}
            out |= {"ttl": ip.ttl, "proto": PROTO_NAMES.get(ip.p, str(ip.p))}
            out["what"], key, _ = describe(ip)
            _ports(out, ip.data, ICMP_NAMES)
        elif isinstance(ip, dpkt.ip6.IP6):
            out |= {"src": socket.inet_ntop(socket.AF_INET6, ip.src)}
            out |= {"dst": socket.inet_ntop(socket.AF_INET6, ip.dst)}
            out |= {"hlim": ip.hlim, "proto": PROTO_NAMES.get(ip.p, str(ip.p))}
            out["what"], key = describe6(ip)
            _ports(out, ip.data, ICMP6_NAMES)
        elif isinstance(ip, dpkt.arp.ARP):
            out |= {"proto": "arp", "src": socket.inet_ntoa(ip.spa)}
            out |= {
                "dst": socket.inet_ntoa(ip.tpa),
                "what": "ARP " + ("reply" if ip.op == 2 else "who-has"),
            }
        else:
            out["proto"] = f"0x{eth.type:04x}"
    except BAD_FRAME:
        out.setdefault("what", "unreadable")
    out["g"] = groups.number(key, segment, at)
    return out


def describe6(ip: dpkt.ip6.IP6) -> tuple[str, tuple]:
    """(label, key matching this packet across hops) of an IPv6 packet: the ladder's key is
    IPv4's (the IP ID), and IPv6 has none. A router changes only the hop limit, so the key is
    what it leaves alone: addresses, flow label, payload length, protocol, and the transport's
    own numbers (TCP sequence, ICMPv6 echo id and seq), or the payload's first bytes."""
    base: tuple = (6, ip.src, ip.dst, ip.flow, ip.plen, ip.p)
    l4 = ip.data
    if isinstance(l4, dpkt.tcp.TCP):
        flags = "".join(c for bit, c in TCP_FLAGS if l4.flags & bit)
        n = ip.plen - l4.off * 4  # extension headers aside: the lab sends none
        label = f"TCP {l4.sport}→{l4.dport} [{flags}] seq {l4.seq} ack {l4.ack} len {n}"
        return label, base + (l4.sport, l4.dport, l4.seq, l4.ack, l4.flags)
    if isinstance(l4, dpkt.udp.UDP):
        label = f"UDP {l4.sport}→{l4.dport} len {l4.ulen - 8}"
        return label, base + (l4.sport, l4.dport, l4.sum, bytes(l4.data)[:PAYLOAD_KEY])
    if isinstance(l4, dpkt.icmp6.ICMP6):
        name = ICMP6_NAMES.get(l4.type, f"type {l4.type}")
        inner = l4.data
        if isinstance(inner, dpkt.icmp6.ICMP6.Echo):
            key = base + (l4.type, inner.id, inner.seq)
            return f"ICMPv6 {name} id {inner.id} seq {inner.seq}", key
        return f"ICMPv6 {name}", base + (l4.type, l4.code, bytes(inner)[:PAYLOAD_KEY])
    proto = PROTO_NAMES.get(ip.p, str(ip.p))
    return proto.upper(), base + (bytes(l4)[:PAYLOAD_KEY],)


def _ports(out: dict[str, Any], l4: Any, names: dict[int, str]) -> None:
    if isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP):
        out["sport"], out["dport"] = l4.sport, l4.dport
    elif isinstance(l4, dpkt.icmp.ICMP | dpkt.icmp6.ICMP6):
        out["icmp"] = names.get(l4.type, f"type {l4.type}")
    if "what" not in out:
        port = f" {out['sport']}→{out['dport']}" if "sport" in out else ""
        out["what"] = (out["proto"].upper() + port + " " + out.get("icmp", "")).strip()


# --- one participant's wire ---------------------------------------------------------------------


@dataclass(eq=False)
class Watch:
    """One websocket's capture: its taps, its rate budget and its counts."""

    participant: str
    lab: str
    engine: EngineAPI
    ws: web.WebSocketResponse
    taps: dict[str, str] = field(default_factory=dict)  # segment -> tap id
    readers: list[asyncio.Task] = field(default_factory=list)
    groups: Groups = field(default_factory=Groups)
    budget: float = float(RATE)
    refilled: float = field(default_factory=time.monotonic)
    shown: int = 0
    dropped: int = 0
    filter: str = DEFAULT_FILTER

    def allow(self) -> bool:
        """Token bucket: RATE a second, a burst of RATE; False means drop and count."""
        now = time.monotonic()
        self.budget = min(float(RATE), self.budget + (now - self.refilled) * RATE)
        self.refilled = now
        if self.budget >= 1:
            self.budget -= 1
            return True
        return False


Call = Callable[..., Awaitable[Any]]  # Portal.call: a blocking function on the participant's lane


class Wires:
    """Every open wire of the portal, at most one per participant."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self._open: dict[str, Watch] = {}
        self._last: dict[str, float] = {}  # participant -> when their last watch was served

    def of(self, participant: str) -> Watch | None:
        return self._open.get(participant)

    async def serve(
        self,
        ws: web.WebSocketResponse,
        participant: str,
        lab: str,
        engine: EngineAPI,
        networks: Callable[[], Awaitable[dict[str, str]]],
        valid: Callable[[], bool],
    ) -> None:
        """Serve one websocket until it closes; its taps are gone when this returns.

        networks: the participant's lab's segments, read fresh for each watch request;
        valid: whether the link the socket was opened with still works."""
        old = self._open.get(participant)
        watch = Watch(participant, lab, engine, ws)
        self._open[participant] = watch
        if old is not None:
            await self._send(old, {"ended": "the wire was opened in another page"})
            await old.ws.close()
        ticker = asyncio.create_task(self._tick(watch, valid))
        try:
            async for body in objects(ws):
                try:
                    if "watch" in body:
                        segs = check_segments(body["watch"], await networks())
                        bpf = check_filter(body.get("filter"))
                        await self._pace(participant)
                        await self._watch(watch, segs, bpf)
                    elif body.get("stop"):
                        await self._stop(watch)
                        await self._send(watch, {"watching": [], "filter": watch.filter})
                except WireError as err:
                    await self._send(watch, {"error": err.message, "hint": err.hint})
                except web.HTTPException as err:  # the lab is gone, or being reset
                    await self._send(watch, {"error": err.text or err.reason, "hint": ""})
        finally:
            ticker.cancel()
            if self._open.get(participant) is watch:
                del self._open[participant]
            # shielded: a handler cancelled while it removes its taps still removes them all
            await asyncio.shield(self._stop(watch))

    async def _pace(self, participant: str) -> None:
        """At most one watch request per WATCH_GAP per participant, over all their sockets:
        each starts and removes containers on the shared engine. Later ones wait (no thread)."""
        wait = self._last.get(participant, -WATCH_GAP) + WATCH_GAP - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last[participant] = time.monotonic()

    async def _watch(self, watch: Watch, segments: list[str], bpf: str) -> None:
        """Replace the watch's taps with taps on these segments."""
        await self._stop(watch)
        watch.filter = bpf
        started = await asyncio.gather(
            *(
                self.call(watch.engine.tap, watch.lab, s, bpf, who=watch.participant)
                for s in segments
            ),
            return_exceptions=True,
        )
        failed = [
            (s, r) for s, r in zip(segments, started, strict=True) if isinstance(r, BaseException)
        ]
        for seg, got in zip(segments, started, strict=True):
            if isinstance(got, BaseException):
                continue
            tap_id, sock = got
            watch.taps[seg] = tap_id
            sock.setblocking(False)
            watch.readers.append(asyncio.create_task(self._read(watch, seg, sock)))
        if failed or watch.ws.closed:
            await self._stop(watch)
            if failed:
                seg, err = failed[0]
                raise WireError(f"cannot capture on {seg}: {getattr(err, 'message', err)}")
            return
        await self._send(watch, {"watching": segments, "filter": bpf, "rate": RATE})

    async def _read(self, watch: Watch, segment: str, sock: socket.socket) -> None:
        """One tap's stream to the page: frames within the budget, the rest counted."""
        loop = asyncio.get_running_loop()
        demux, pcap = Demux(), Pcap()
        complaint = ""
        try:
            while True:
                data = await loop.sock_recv(sock, 65536)
                if not data:
                    break
                batch = []
                for kind, chunk in demux.feed(data):
                    if kind != 1:  # stderr: tcpdump's banner, or why it refused the filter
                        complaint = (complaint + chunk.decode(errors="replace"))[-2000:]
                        continue
                    for at, wire, raw in pcap.feed(chunk):
                        if watch.allow():
                            batch.append(frame(at, segment, wire, raw, watch.groups))
                        else:
                            watch.dropped += 1
                if batch:
                    watch.shown += len(batch)
                    await self._send(watch, {"f": batch, "dropped": watch.dropped})
        except (OSError, ValueError) as err:
            complaint += f"\n{err}"
        finally:
            with contextlib.suppress(OSError):
                sock.close()
        if watch.taps.get(segment):  # ended by itself, not by _stop: say why
            why = [ln for ln in complaint.splitlines() if ln and "listening on" not in ln]
            await self._send(watch, {"ended": f"the capture on {segment} stopped", "why": why[-3:]})

    async def _stop(self, watch: Watch) -> None:
        """Remove every tap of the watch and end its readers; idempotent."""
        taps, watch.taps = watch.taps, {}
        readers, watch.readers = watch.readers, []
        for task in readers:
            task.cancel()
        results = await asyncio.gather(
            *(
                self.call(watch.engine.untap, watch.lab, t, who=watch.participant)
                for t in taps.values()
            ),
            return_exceptions=True,
        )
        del results  # a tap that cannot be removed ends after LIFETIME, and with the lab

    async def _tick(self, watch: Watch, valid: Callable[[], bool]) -> None:
        """Counts to the page every STATS_EVERY; a revoked link closes the wire."""
        told = (-1, -1)
        while not watch.ws.closed:
            await asyncio.sleep(STATS_EVERY)
            if not valid():
                await self._send(watch, {"ended": "your link was revoked"})
                await watch.ws.close()
                return
            if (watch.shown, watch.dropped) != told:
                told = (watch.shown, watch.dropped)
                await self._send(watch, {"dropped": watch.dropped, "shown": watch.shown})

    async def _send(self, watch: Watch, message: dict[str, Any]) -> None:
        if not watch.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await watch.ws.send_str(json.dumps(message))

    async def close_all(self) -> None:
        """The portal stops: every tap goes first, then the sockets."""
        watches = list(self._open.values())
        await asyncio.gather(*(self._stop(w) for w in watches), return_exceptions=True)
        for w in watches:
            await self._send(w, {"ended": "the portal stopped"})
        await asyncio.gather(*(w.ws.close() for w in watches), return_exceptions=True)
