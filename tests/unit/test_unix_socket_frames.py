"""unix-socket counts srv's own traffic, IPv6 included, and only the kernel's neighbour upkeep is
left out. A CI run's `make lab` FAILed unix-socket on a fresh dual-stack lab. Captures of such
runs here hold srv's IPv6 unicast neighbour advertisements to a neighbour's MAC (answers to its
NUD probes), which the IPv4-only parser could not tell from real traffic."""

from __future__ import annotations

import io
import socket
from types import SimpleNamespace

import dpkt

from hoplab.exercises.unix_socket import _ours
from hoplab.runtime.pcap import parse

SRV_MAC = "02:42:0a:4d:02:64"
ROUTER_MAC = "02:42:0a:4d:02:01"
SRV4, SRV6 = "10.77.2.100", "fd77:2::64"
ROUTER6, CAROL6 = "fd77:2::1", "fd77:3::c"


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _v6(src_mac: str, dst_mac: str, src: str, dst: str, l4: dpkt.Packet, nxt: int) -> bytes:
    ip = dpkt.ip6.IP6(
        src=socket.inet_pton(socket.AF_INET6, src),
        dst=socket.inet_pton(socket.AF_INET6, dst),
        nxt=nxt,
        hlim=255,
        data=l4,
    )
    ip.plen = len(bytes(l4))
    eth = dpkt.ethernet.Ethernet(
        src=_mac(src_mac), dst=_mac(dst_mac), type=dpkt.ethernet.ETH_TYPE_IP6, data=ip
    )
    return bytes(eth)


def _icmp6(kind: int) -> dpkt.icmp6.ICMP6:
    return dpkt.icmp6.ICMP6(type=kind, code=0, data=b"\x00" * 20)


def _pcap(*frames: bytes) -> bytes:
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out)
    for i, frame in enumerate(frames):
        writer.writepkt(frame, ts=1.0 + i)
    return out.getvalue()


def _counted(*frames: bytes) -> list:
    cap = SimpleNamespace(frames=parse(_pcap(*frames)))
    return _ours(cap, {SRV4, SRV6}, {SRV_MAC})


def test_ipv6_is_parsed_with_addresses_hop_limit_and_icmp6_type():
    ns = _v6(SRV_MAC, ROUTER_MAC, SRV6, ROUTER6, _icmp6(dpkt.icmp6.ND_NEIGHBOR_SOLICIT), 58)
    (frame,) = parse(_pcap(ns))
    assert (frame.src_ip, frame.dst_ip, frame.ttl) == (SRV6, ROUTER6, 255)
    assert (frame.proto, frame.icmp_type) == ("icmp6", dpkt.icmp6.ND_NEIGHBOR_SOLICIT)


def test_unicast_neighbour_solicitation_and_advert_from_srv_are_upkeep():
    assert not _counted(
        _v6(SRV_MAC, ROUTER_MAC, SRV6, ROUTER6, _icmp6(dpkt.icmp6.ND_NEIGHBOR_SOLICIT), 58),
        _v6(SRV_MAC, ROUTER_MAC, SRV6, ROUTER6, _icmp6(dpkt.icmp6.ND_NEIGHBOR_ADVERT), 58),
        _v6(ROUTER_MAC, SRV_MAC, ROUTER6, SRV6, _icmp6(dpkt.icmp6.ND_NEIGHBOR_SOLICIT), 58),
    )


def test_srv_ipv6_traffic_is_counted_both_ways():
    echo = _icmp6(dpkt.icmp6.ICMP6_ECHO_REQUEST)
    tcp = dpkt.tcp.TCP(sport=40000, dport=80, flags=dpkt.tcp.TH_SYN)
    counted = _counted(
        # carol pings srv over IPv6: the request arrives via the router's MAC, the reply leaves
        # from srv's; both count.
        _v6(ROUTER_MAC, SRV_MAC, CAROL6, SRV6, echo, 58),
        _v6(SRV_MAC, ROUTER_MAC, SRV6, CAROL6, echo, 58),
        _v6(SRV_MAC, ROUTER_MAC, SRV6, CAROL6, tcp, 6),
    )
    assert [(f.proto, f.src_ip) for f in counted] == [
        ("icmp6", CAROL6),
        ("icmp6", SRV6),
        ("tcp", SRV6),
    ]


def test_a_neighbour_discovery_type_does_not_hide_ipv4_traffic():
    # ICMPv4 type 135 does not exist, but a frame that claims it is still srv's traffic.
    icmp = dpkt.icmp.ICMP(type=135, code=0, data=b"\x00" * 8)
    ip = dpkt.ip.IP(
        src=socket.inet_aton(SRV4), dst=socket.inet_aton("10.77.2.1"), p=1, ttl=64, data=icmp
    )
    ip.len = 20 + len(bytes(icmp))
    eth = dpkt.ethernet.Ethernet(src=_mac(SRV_MAC), dst=_mac(ROUTER_MAC), data=ip)
    assert len(_counted(bytes(eth))) == 1
