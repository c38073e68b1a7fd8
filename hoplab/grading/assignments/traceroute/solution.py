"""traceroute, reference solution: UDP probes with a rising TTL; ICMP errors via IP_RECVERR.

usage: python3 traceroute.py HOST MAX_HOPS      prints "TTL ADDRESS" per hop ("TTL *" if silent)
"""

import socket
import struct
import sys
import time

IP_RECVERR = 11  # Linux values; Python's socket module lacks IP_RECVERR
SO_EE_ORIGIN_ICMP = 2
ICMP_DEST_UNREACH = 3
BASE_PORT = 33434
WAIT = 1.0


def probe(dst: str, ttl: int) -> tuple[str | None, int | None]:
    """Send one datagram with this TTL; return (who answered, ICMP type) from the error queue."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        s.connect((dst, BASE_PORT + ttl))
        s.send(b"hoplab probe")
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                _, anc, _, _ = s.recvmsg(512, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
            except BlockingIOError:
                time.sleep(0.005)
                continue
            for level, kind, data in anc:
                if level == socket.IPPROTO_IP and kind == IP_RECVERR:
                    # struct sock_extended_err (16 bytes), then the offender's sockaddr_in.
                    _errno, origin, icmp_type, _code = struct.unpack("IBBB", data[:7])
                    if origin == SO_EE_ORIGIN_ICMP:
                        return socket.inet_ntoa(data[20:24]), icmp_type
    return None, None


def main() -> None:
    dst = socket.gethostbyname(sys.argv[1])
    max_hops = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    for ttl in range(1, max_hops + 1):
        who, icmp_type = probe(dst, ttl)
        print(f"{ttl} {who or '*'}", flush=True)
        if who == dst or icmp_type == ICMP_DEST_UNREACH:
            break


if __name__ == "__main__":
    main()
