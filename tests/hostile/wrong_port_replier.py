"""Hostile udp-service submission: receives on PORT, and answers each datagram from a fresh
socket, so every reply comes from another (ephemeral) source port. The content is right, and the
server process holds one socket whenever it is counted.

What it attacks: a grade client that takes any datagram that arrives as the reply; a client
that connect()s to PORT would never get one.
"""

import socket
import sys

port = int(sys.argv[1])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", port))
while True:
    data, (ip, peer_port) = sock.recvfrom(65535)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as fresh:
        fresh.sendto(f"{ip}:{peer_port} ".encode() + data, (ip, peer_port))
