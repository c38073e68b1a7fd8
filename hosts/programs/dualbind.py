"""Dual-stack sockets: one [::] socket for both families, or one per family (IPV6_V6ONLY).

dualbind.py serve PORT V6ONLY N   [::]:PORT with IPV6_V6ONLY=V6ONLY, then tries 0.0.0.0:PORT too;
                                  accepts N connections on whichever socket holds; prints JSON
dualbind.py connect ADDR PORT     one TCP connection; prints the local address it came from
"""

import errno
import json
import select
import socket
import sys
import time


def serve(port: int, v6only: int, count: int) -> None:
    six = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    six.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    # A run again soon after finds its own closed connections in TIME_WAIT; SO_REUSEADDR lets
    # it bind past them, yet never past a listening socket (the lesson's EADDRINUSE holds).
    six.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    six.bind(("::", port))
    six.listen(8)
    socks = {six: "[::]"}
    four = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    four.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        four.bind(("0.0.0.0", port))
        four.listen(8)
        socks[four] = "0.0.0.0"
        v4_bind = "bound"
    except OSError as e:
        v4_bind = errno.errorcode.get(e.errno, str(e))
        four.close()
    print(json.dumps({"listening": port, "v4_bind": v4_bind}), flush=True)
    peers = []
    # The clients come from execs in another node, seconds apart on a loaded engine; the
    # exercise stops this server 5 s after its clients are done, so a long wait costs nothing.
    deadline = time.monotonic() + 60
    while len(peers) < count and time.monotonic() < deadline:
        ready, _, _ = select.select(list(socks), [], [], 1)
        for s in ready:
            conn, peer = s.accept()
            peers.append({"socket": socks[s], "peer": peer[0]})
            conn.close()
    print(json.dumps({"v6only": v6only, "v4_bind": v4_bind, "peers": peers}), flush=True)


def connect(addr: str, port: int) -> None:
    try:
        with socket.create_connection((addr, port), timeout=3) as s:
            print(json.dumps({"local": s.getsockname()[0], "to": addr}))
    except OSError as e:  # evidence too: the check says what failed
        print(json.dumps({"error": e.strerror or str(e), "to": addr}))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        connect(sys.argv[2], int(sys.argv[3]))
