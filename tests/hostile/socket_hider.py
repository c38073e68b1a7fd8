"""Hostile udp-service submission: serves from four sockets, and shows one. The graded process
binds PORT with SO_REUSEPORT and serves that socket; a child it forks binds three more sockets to
the same port (the kernel spreads clients over the group by their address and port) and serves
them. Every reply comes from PORT with the right content.

What it attacks: a socket count read from the graded process's /proc/PID/fd alone.
"""

import os
import selectors
import socket
import sys

port = int(sys.argv[1])


def bound() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("0.0.0.0", port))
    return s


def serve(socks: list[socket.socket]) -> None:
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            data, (ip, peer_port) = key.fileobj.recvfrom(65535)
            key.fileobj.sendto(f"{ip}:{peer_port} ".encode() + data, (ip, peer_port))


mine = bound()
if os.fork() == 0:
    serve([bound() for _ in range(3)])
serve([mine])
