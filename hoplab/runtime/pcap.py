"""Parse captures with dpkt into plain frames that checks can compare.

Checksums are ignored on purpose: veth offload leaves them unfilled in captures taken inside nodes.
"""

from __future__ import annotations

import io
import socket
from dataclasses import dataclass

import dpkt

PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6"}


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


@dataclass(frozen=True)
class Frame:
    """One Ethernet frame reduced to the fields the lessons talk about."""

    time: float
    src_mac: str
    dst_mac: str
    ethertype: int
    src_ip: str = ""
    dst_ip: str = ""
    ttl: int = 0
    proto: str = ""
    ip_id: int = 0
    dont_fragment: bool = False
    more_fragments: bool = False
    frag_offset: int = 0
    ip_len: int = 0
    sport: int = 0
    dport: int = 0
    tcp_flags: str = ""
    seq: int = 0
    ack: int = 0
    payload_len: int = 0
    icmp_type: int = -1
    icmp_code: int = -1

    @property
    def four_tuple(self) -> tuple[str, int, str, int]:
        return (self.src_ip, self.sport, self.dst_ip, self.dport)


TCP_FLAGS = [  # the flags shown, in their order (the ladder and the wire panel too)
    (dpkt.tcp.TH_SYN, "S"),
    (dpkt.tcp.TH_ACK, "A"),
    (dpkt.tcp.TH_FIN, "F"),
    (dpkt.tcp.TH_RST, "R"),
    (dpkt.tcp.TH_PUSH, "P"),
]


def parse(data: bytes) -> list[Frame]:
    """Frames of a pcap file; an empty or truncated capture gives what could be read."""
    if not data:
        return []
    frames = []
    try:
        reader = dpkt.pcap.Reader(io.BytesIO(data))
        for ts, buf in reader:
            frames.append(_frame(ts, buf))
    except (ValueError, dpkt.dpkt.NeedData, dpkt.dpkt.UnpackError):
        pass
    return frames


def _frame(ts: float, buf: bytes) -> Frame:
    eth = dpkt.ethernet.Ethernet(buf)
    base = {
        "time": ts,
        "src_mac": mac_str(eth.src),
        "dst_mac": mac_str(eth.dst),
        "ethertype": eth.type,
    }
    ip = eth.data
    if isinstance(ip, dpkt.ip.IP):
        return Frame(**base | _ip4(ip))
    if isinstance(ip, dpkt.ip6.IP6):
        return Frame(**base | _ip6(ip))
    return Frame(**base)


def _ip4(ip: dpkt.ip.IP) -> dict:
    fields = {
        "src_ip": socket.inet_ntoa(ip.src),
        "dst_ip": socket.inet_ntoa(ip.dst),
        "ttl": ip.ttl,
        "proto": PROTO_NAMES.get(ip.p, str(ip.p)),
        "ip_id": ip.id,
        "dont_fragment": bool(ip.df),
        "more_fragments": bool(ip.mf),
        "frag_offset": ip.offset,
        "ip_len": ip.len,
    }
    # Only a first fragment carries the transport header; ICMP errors are read from any.
    if ip.offset == 0 or isinstance(ip.data, dpkt.icmp.ICMP):
        fields |= _upper(ip.data)
    return fields


def _ip6(ip: dpkt.ip6.IP6) -> dict:
    """Addresses, hop limit (as ttl) and the upper layer: dpkt skips extension headers, so `p`
    names the upper layer. Fragment headers are not split out (no lesson reads them in IPv6)."""
    return {
        "src_ip": socket.inet_ntop(socket.AF_INET6, ip.src),
        "dst_ip": socket.inet_ntop(socket.AF_INET6, ip.dst),
        "ttl": ip.hlim,
        "proto": PROTO_NAMES.get(ip.p, str(ip.p)),
        "ip_len": 40 + ip.plen,
    } | _upper(ip.data)


def _upper(l4: object) -> dict:
    if isinstance(l4, dpkt.tcp.TCP):
        return {
            "sport": l4.sport,
            "dport": l4.dport,
            "seq": l4.seq,
            "ack": l4.ack,
            "tcp_flags": "".join(c for bit, c in TCP_FLAGS if l4.flags & bit),
            "payload_len": len(l4.data),
        }
    if isinstance(l4, dpkt.udp.UDP):
        return {"sport": l4.sport, "dport": l4.dport, "payload_len": len(l4.data)}
    if isinstance(l4, (dpkt.icmp.ICMP, dpkt.icmp6.ICMP6)):
        return {"icmp_type": l4.type, "icmp_code": l4.code}
    return {}
