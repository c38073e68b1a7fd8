"""Path MTU and fragmentation with plain UDP sockets.

net_mtu.py recv PORT               datagram sizes until an "end" marker
net_mtu.py send HOST PORT SIZE     one datagram with DF clear, then DF set (PMTU discovery),
                                   then "end"; the ICMP fragmentation-needed seen three ways:
                                   socket error queue, IP_MTU, and a raw ICMP socket
"""

import errno
import json
import socket
import struct
import sys
import time

IP_MTU_DISCOVER = 10  # Linux values; Python 3.11's socket module lacks the names
IP_PMTUDISC_DONT = 0
IP_PMTUDISC_DO = 2
IP_RECVERR = 11
IP_MTU = 14
SO_EE_ORIGIN_ICMP = 2


def recv(port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    s.settimeout(10)
    print(json.dumps({"listening": port}), flush=True)
    sizes = []
    while (data := s.recv(65535)) != b"end":
        sizes.append(len(data))
    print(json.dumps({"sizes": sizes}))


def attempt(s: socket.socket, size: int) -> str:
    try:
        s.send(b"m" * size)
        return "sent"
    except OSError as err:
        return errno.errorcode.get(err.errno or 0, str(err))


def error_queue(s: socket.socket, wait: float) -> dict:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            _d, anc, _f, _a = s.recvmsg(2048, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except BlockingIOError:
            time.sleep(0.005)
            continue
        for level, typ, data in anc:
            if level == socket.IPPROTO_IP and typ == IP_RECVERR:
                # struct sock_extended_err: errno, origin, type, code, pad, info (the MTU), data;
                # then the offender's sockaddr_in.
                err, origin, icmp_type, code, _pad, info = struct.unpack("IBBBBI", data[:12])
                return {
                    "errno": errno.errorcode.get(err, str(err)),
                    "icmp": origin == SO_EE_ORIGIN_ICMP,
                    "icmp_type": icmp_type,
                    "icmp_code": code,
                    "mtu": info,
                    "offender": socket.inet_ntoa(data[20:24]),
                }
    return {}


def raw_frag_needed(raw: socket.socket, dst: str) -> list[dict]:
    """ICMP type 3 code 4 messages about packets to dst, read off the wire by a raw socket."""
    seen = []
    while True:
        try:
            pkt, _addr = raw.recvfrom(2048)
        except BlockingIOError:
            return seen
        ihl = (pkt[0] & 0x0F) * 4
        icmp = pkt[ihl:]
        inner_dst = socket.inet_ntoa(icmp[8 + 16 : 8 + 20]) if len(icmp) >= 28 else ""
        if icmp[0] == 3 and icmp[1] == 4 and inner_dst == dst:
            (mtu,) = struct.unpack("!H", icmp[6:8])
            seen.append({"from": socket.inet_ntoa(pkt[12:16]), "next_hop_mtu": mtu})


def send(host: str, port: int, size: int) -> None:
    out: dict = {"size": size}

    # DF clear: the kernel lets routers cut the datagram into fragments.
    dont = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dont.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
    dont.connect((host, port))
    out["df_clear_send"] = attempt(dont, size)

    # DF set: a router that cannot forward it whole must drop it and say so.
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    raw.setblocking(False)
    do = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    do.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
    do.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    do.connect((host, port))
    out["mtu_before"] = do.getsockopt(socket.IPPROTO_IP, IP_MTU)
    out["df_set_first_send"] = attempt(do, size)
    out["error_queue"] = error_queue(do, wait=2.0)
    out["mtu_after"] = do.getsockopt(socket.IPPROTO_IP, IP_MTU)
    out["df_set_second_send"] = attempt(do, size)
    out["raw_icmp"] = raw_frag_needed(raw, host)

    dont.send(b"end")  # small: crosses whole, after everything above
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "recv":
        recv(int(sys.argv[2]))
    else:
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
