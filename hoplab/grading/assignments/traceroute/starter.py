"""traceroute: which routers lie between here and HOST, from plain sockets.

usage: python3 traceroute.py HOST MAX_HOPS
prints one line per hop: "TTL ADDRESS" (or "TTL *" if nobody answered), and stops once HOST
itself answers. hoplab runs it on alice (to srv) and on carol (to dave).
Check it with:  hoplab check traceroute      (the lesson: hoplab assignments traceroute)
"""

import socket
import struct
import sys
import time

IP_RECVERR = 11  # Linux values; Python's socket module lacks IP_RECVERR
SO_EE_ORIGIN_ICMP = 2
ICMP_DEST_UNREACH = 3
BASE_PORT = 33434  # probes go to unlikely UDP ports, so the destination says "port unreachable"
WAIT = 1.0


def probe(dst: str, ttl: int) -> tuple[str | None, int | None]:
    """Send one UDP datagram that may cross ttl-1 routers; return (who answered, ICMP type)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        # TODO 1: set the probe's TTL: s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        # TODO 2: ask for ICMP errors on the socket's error queue:
        #         s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        raise NotImplementedError("TODO 1 and 2: set IP_TTL and IP_RECVERR on the probe")
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
                    # data is struct sock_extended_err: errno (4 bytes), origin, type, code,
                    # pad (1 byte each), info, data (4 bytes each); then the sockaddr_in of
                    # whoever sent the ICMP error: family (2), port (2), address (4).
                    _errno, origin, icmp_type, _code = struct.unpack("IBBB", data[:7])
                    # TODO 3: if origin == SO_EE_ORIGIN_ICMP, return the offender's address
                    #         (socket.inet_ntoa() of its 4 bytes) and icmp_type.
    return None, None


def main() -> None:
    dst = socket.gethostbyname(sys.argv[1])
    max_hops = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    for ttl in range(1, max_hops + 1):
        who, icmp_type = probe(dst, ttl)
        print(f"{ttl} {who or '*'}", flush=True)
        # TODO 4: stop once the destination itself answered (who == dst, or icmp_type is
        #         ICMP_DEST_UNREACH): nothing lies beyond it.


if __name__ == "__main__":
    main()
