"""hoplab's own UDP client for grading a participant's UDP service.

grade_udp_clients.py ask HOST PORT WAIT SIZE...   from one socket, send one datagram of each SIZE
                                                  (printable, numbered), then collect replies for
                                                  at most WAIT s; prints JSON

A reply is a datagram from HOST:PORT, exactly what a connect()ed client would accept; anything
from another address or port (a server that answers from a fresh socket) is listed apart as a
stray, so the grader can say why it does not count.
"""

import json
import os
import socket
import sys
import time


def payload(i: int, size: int) -> bytes:
    head = f"#{i}:{os.urandom(3).hex()}:".encode()
    return (head + b"x" * size)[:size]


def ask(host: str, port: int, wait: float, sizes: list[int]) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    sent = [payload(i, n) for i, n in enumerate(sizes)]
    for p in sent:
        s.sendto(p, (host, port))
    replies, strays, deadline = [], [], time.monotonic() + wait
    while len(replies) < len(sent):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            data, peer = s.recvfrom(65535)
        except (TimeoutError, OSError):
            break
        entry = {"data": data.decode(errors="replace"), "from": list(peer)}
        (replies if peer == (host, port) else strays).append(entry)
    print(
        json.dumps(
            {
                "local_port": s.getsockname()[1],
                "sent": [p.decode() for p in sent],
                "replies": replies,
                "strays": strays,
            }
        )
    )


if __name__ == "__main__":
    ask(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), [int(x) for x in sys.argv[5:]])
