"""udp-service, reference solution: one socket, one reply per datagram, to its sender.

usage: python3 udp_service.py PORT
"""

import socket
import sys


def main() -> None:
    port = int(sys.argv[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    while True:
        data, (ip, peer_port) = sock.recvfrom(65535)
        sock.sendto(f"{ip}:{peer_port} ".encode() + data, (ip, peer_port))


if __name__ == "__main__":
    main()
