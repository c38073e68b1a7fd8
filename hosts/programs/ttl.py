"""TTL evidence from plain sockets.

ttl.py listen PORT               one UDP datagram; prints the TTL it arrived with (IP_RECVTTL)
ttl.py send HOST PORT            sends one UDP datagram with the default TTL
ttl.py trace HOST [MAX_HOPS]     a traceroute: IP_TTL 1, 2, ... and ICMP errors via IP_RECVERR
"""

import json
import socket
import struct
import sys
import time

IP_RECVERR = 11
IP_RECVTTL = 12  # Linux value; Python 3.11's socket module lacks the name
SO_EE_ORIGIN_ICMP = 2
ICMP_TIME_EXCEEDED = 11
ICMP_DEST_UNREACH = 3


def listen(port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    s.bind(("0.0.0.0", port))
    s.settimeout(15)
    print(json.dumps({"listening": port}), flush=True)
    data, anc, _flags, peer = s.recvmsg(2048, socket.CMSG_SPACE(4))
    ttl = next(
        (
            struct.unpack("i", d[:4])[0]
            for lvl, typ, d in anc
            if lvl == socket.IPPROTO_IP and typ == socket.IP_TTL
        ),
        None,
    )
    print(json.dumps({"ttl": ttl, "peer": list(peer), "bytes": len(data)}), flush=True)


def send(host: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"ttl probe", (host, port))
    default_ttl = s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL)
    print(json.dumps({"sent_ttl": default_ttl}))


def probe(host: str, ttl: int, port: int) -> dict:
    """One probe: errors come back on the socket's error queue, with the offender's address."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
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
            if level == socket.IPPROTO_IP and typ == IP_RECVERR:
                # struct sock_extended_err: errno u32, origin u8, type u8, code u8, pad u8,
                # info u32, data u32, then the offender's sockaddr_in.
                errno_, origin, icmp_type, code = struct.unpack("IBBB", data[:7])
                offender = socket.inet_ntoa(data[16 + 4 : 16 + 8])
                return {
                    "ttl": ttl,
                    "from": offender,
                    "icmp_type": icmp_type,
                    "icmp_code": code,
                    "errno": errno_,
                    "icmp": origin == SO_EE_ORIGIN_ICMP,
                }
    return {"ttl": ttl, "from": None}


def trace(host: str, max_hops: int) -> None:
    dst = socket.gethostbyname(host)
    hops = []
    for ttl in range(1, max_hops + 1):
        hop = probe(dst, ttl, 33434 + ttl)
        hops.append(hop)
        if hop["from"] == dst or hop.get("icmp_type") == ICMP_DEST_UNREACH:
            break
    print(json.dumps({"destination": dst, "hops": hops}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "listen":
        listen(int(sys.argv[2]))
    elif cmd == "send":
        send(sys.argv[2], int(sys.argv[3]))
    else:
        trace(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 8)
