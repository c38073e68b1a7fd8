"""Hop-limit evidence from plain IPv6 sockets: the TTL lesson in IPv6's words.

hoplimit.py listen PORT            one UDP datagram on [::]; its hop limit (IPV6_RECVHOPLIMIT)
hoplimit.py send ADDR PORT         one UDP datagram with the default hop limit
hoplimit.py trace ADDR [MAX_HOPS]  IPV6_UNICAST_HOPS 1, 2, ... and ICMPv6 errors (IPV6_RECVERR)
"""

import json
import socket
import struct
import sys
import time

IPV6_RECVERR = 25  # Linux value; Python's socket module lacks the name
SO_EE_ORIGIN_ICMP6 = 3
ICMP6_DST_UNREACH = 1


def listen(port: int) -> None:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
    s.bind(("::", port))
    s.settimeout(15)
    print(json.dumps({"listening": port}), flush=True)
    data, anc, _flags, peer = s.recvmsg(2048, socket.CMSG_SPACE(4))
    hops = next(
        (
            struct.unpack("i", d[:4])[0]
            for lvl, typ, d in anc
            if lvl == socket.IPPROTO_IPV6 and typ == socket.IPV6_HOPLIMIT
        ),
        None,
    )
    print(json.dumps({"hop_limit": hops, "peer": peer[0], "bytes": len(data)}), flush=True)


def send(addr: str, port: int) -> None:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.sendto(b"hop-limit probe", (addr, port))
    print(
        json.dumps({"sent_hop_limit": s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS)})
    )


def probe(addr: str, hops: int, port: int) -> dict:
    """One probe; an ICMPv6 error comes back on the error queue with the offender's address."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, hops)
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
    s.connect((addr, port))
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
            if level == socket.IPPROTO_IPV6 and typ == IPV6_RECVERR:
                # struct sock_extended_err (16 bytes), then the offender's sockaddr_in6:
                # family u16, port u16, flowinfo u32, address 16 bytes.
                errno_, origin, icmp_type, code = struct.unpack("IBBB", data[:7])
                offender = socket.inet_ntop(socket.AF_INET6, data[16 + 8 : 16 + 24])
                return {
                    "hops": hops,
                    "from": offender,
                    "icmp_type": icmp_type,
                    "icmp_code": code,
                    "errno": errno_,
                    "icmp": origin == SO_EE_ORIGIN_ICMP6,
                }
    return {"hops": hops, "from": None}


def trace(addr: str, max_hops: int) -> None:
    out = []
    for hops in range(1, max_hops + 1):
        hop = probe(addr, hops, 33434 + hops)
        out.append(hop)
        if hop["from"] == addr or hop.get("icmp_type") == ICMP6_DST_UNREACH:
            break
    print(json.dumps({"destination": addr, "hops": out}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "listen":
        listen(int(sys.argv[2]))
    elif cmd == "send":
        send(sys.argv[2], int(sys.argv[3]))
    else:
        trace(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 8)
