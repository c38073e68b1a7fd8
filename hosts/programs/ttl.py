"""TTL evidence from plain sockets; hoplimit.py runs the same code with IPv6's socket options.

ttl.py listen PORT               one UDP datagram; prints the TTL it arrived with (IP_RECVTTL)
ttl.py send HOST PORT            sends one UDP datagram with the default TTL
ttl.py trace HOST [MAX_HOPS]     a traceroute: IP_TTL 1, 2, ... and ICMP errors via IP_RECVERR
"""

import json
import socket
import struct
import sys
import time
from typing import NamedTuple

# Linux values that Python 3.11's socket module lacks.
IP_RECVERR, IPV6_RECVERR = 11, 25
IP_RECVTTL = 12
SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 2, 3
ICMP_DEST_UNREACH, ICMP6_DST_UNREACH = 3, 1


class Family(NamedTuple):
    """What the hop-count lesson's sockets differ in between IPv4 and IPv6 (hoplimit.py, which
    imports this file: both sit in /opt/hoplab of every node)."""

    af: int
    any_addr: str  # what listen() binds
    level: int  # IPPROTO_IP or IPPROTO_IPV6
    hops_option: int  # IP_TTL or IPV6_UNICAST_HOPS: the count a probe starts with
    recv_option: int  # IP_RECVTTL or IPV6_RECVHOPLIMIT: ask for the count a datagram arrived with
    recv_cmsg: int  # IP_TTL or IPV6_HOPLIMIT: the ancillary message that carries it
    recverr: int  # IP_RECVERR or IPV6_RECVERR: ICMP errors on the error queue
    origin_icmp: int  # SO_EE_ORIGIN_ICMP or SO_EE_ORIGIN_ICMP6
    dest_unreach: int  # the ICMP type the destination's closed port answers with
    name: str  # what the count is called in the JSON of listen and send
    key: str  # the name a hop's count goes under in the JSON of trace
    addr_at: int  # where the address starts in the offender's sockaddr
    addr_len: int


IPV4 = Family(
    af=socket.AF_INET,
    any_addr="0.0.0.0",
    level=socket.IPPROTO_IP,
    hops_option=socket.IP_TTL,
    recv_option=IP_RECVTTL,
    recv_cmsg=socket.IP_TTL,
    recverr=IP_RECVERR,
    origin_icmp=SO_EE_ORIGIN_ICMP,
    dest_unreach=ICMP_DEST_UNREACH,
    name="ttl",
    key="ttl",
    addr_at=4,  # sockaddr_in: family u16, port u16, address 4 bytes
    addr_len=4,
)

IPV6 = Family(
    af=socket.AF_INET6,
    any_addr="::",
    level=socket.IPPROTO_IPV6,
    hops_option=socket.IPV6_UNICAST_HOPS,
    recv_option=socket.IPV6_RECVHOPLIMIT,
    recv_cmsg=socket.IPV6_HOPLIMIT,
    recverr=IPV6_RECVERR,
    origin_icmp=SO_EE_ORIGIN_ICMP6,
    dest_unreach=ICMP6_DST_UNREACH,
    name="hop_limit",
    key="hops",
    addr_at=8,  # sockaddr_in6: family u16, port u16, flowinfo u32, address 16 bytes
    addr_len=16,
)


def receive(port: int, fam: Family = IPV4) -> tuple[int | None, tuple, int]:
    """One UDP datagram on port: (the count it arrived with, its peer, its length)."""
    s = socket.socket(fam.af, socket.SOCK_DGRAM)
    s.setsockopt(fam.level, fam.recv_option, 1)
    s.bind((fam.any_addr, port))
    s.settimeout(15)
    print(json.dumps({"listening": port}), flush=True)
    data, anc, _flags, peer = s.recvmsg(2048, socket.CMSG_SPACE(4))
    count = next(
        (
            struct.unpack("i", d[:4])[0]
            for lvl, typ, d in anc
            if lvl == fam.level and typ == fam.recv_cmsg
        ),
        None,
    )
    return count, peer, len(data)


def send_one(host: str, port: int, payload: bytes, fam: Family = IPV4) -> int:
    """Send one UDP datagram; return the default count it left with."""
    s = socket.socket(fam.af, socket.SOCK_DGRAM)
    s.sendto(payload, (host, port))
    return s.getsockopt(fam.level, fam.hops_option)


def probe(host: str, count: int, port: int, fam: Family = IPV4) -> dict:
    """One probe: errors come back on the socket's error queue, with the offender's address."""
    s = socket.socket(fam.af, socket.SOCK_DGRAM)
    s.setsockopt(fam.level, fam.hops_option, count)
    s.setsockopt(fam.level, fam.recverr, 1)
    s.connect((host, port))
    s.send(b"hoplab trace")
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            _data, anc, _flags, _addr = s.recvmsg(
                512, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT
            )
        except BlockingIOError:
            time.sleep(0.005)
            continue
        for level, typ, data in anc:
            if level == fam.level and typ == fam.recverr:
                # struct sock_extended_err: errno u32, origin u8, type u8, code u8, pad u8,
                # info u32, data u32 (16 bytes), then the offender's sockaddr.
                errno_, origin, icmp_type, code = struct.unpack("IBBB", data[:7])
                at = 16 + fam.addr_at
                offender = socket.inet_ntop(fam.af, data[at : at + fam.addr_len])
                return {
                    fam.key: count,
                    "from": offender,
                    "icmp_type": icmp_type,
                    "icmp_code": code,
                    "errno": errno_,
                    "icmp": origin == fam.origin_icmp,
                }
    return {fam.key: count, "from": None}


def hop_list(dst: str, max_hops: int, fam: Family = IPV4) -> list[dict]:
    """Probes with count 1, 2, ... until the destination (or its unreachable port) answers."""
    hops = []
    for count in range(1, max_hops + 1):
        hop = probe(dst, count, 33434 + count, fam)
        hops.append(hop)
        if hop["from"] == dst or hop.get("icmp_type") == fam.dest_unreach:
            break
    return hops


def listen(port: int, fam: Family) -> None:
    count, peer, size = receive(port, fam)
    print(json.dumps({fam.name: count, "peer": peer[0], "bytes": size}), flush=True)


def send(host: str, port: int, fam: Family) -> None:
    sent = send_one(host, port, f"{fam.name} probe".encode(), fam)
    print(json.dumps({f"sent_{fam.name}": sent}))


def trace(host: str, max_hops: int, fam: Family) -> None:
    dst = socket.getaddrinfo(host, None, fam.af)[0][4][0]  # a name, or an address as it is
    print(json.dumps({"destination": dst, "hops": hop_list(dst, max_hops, fam)}))


def main(fam: Family) -> None:
    """listen PORT | send HOST PORT | trace HOST [MAX_HOPS], in the family's socket options."""
    cmd = sys.argv[1]
    if cmd == "listen":
        listen(int(sys.argv[2]), fam)
    elif cmd == "send":
        send(sys.argv[2], int(sys.argv[3]), fam)
    else:
        trace(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 8, fam)


if __name__ == "__main__":
    main(IPV4)
