"""udp-service: a UDP "who am I" service. Every datagram gets one reply datagram:
b"IP:PORT " + the datagram, where IP:PORT is the address the datagram came from.

usage: python3 udp_service.py PORT
hoplab runs it on srv and asks from alice (two routers away), carol and dave.
Check it with:  hoplab check udp-service     (the lesson: hoplab assignments udp-service)
"""

import socket
import sys


def open_socket(port: int) -> socket.socket:
    """A UDP socket bound to ("0.0.0.0", port)."""
    # TODO 1: make a UDP socket (AF_INET, SOCK_DGRAM), bind it and return it.
    #         No listen(), no accept(): UDP has no connections.
    raise NotImplementedError(f"TODO 1: bind a UDP socket to port {port}")


def reply(data: bytes, sender: tuple[str, int]) -> bytes:
    """The answer to one datagram."""
    # TODO 2: f"{ip}:{port} ".encode() + data, with (ip, port) = sender.
    raise NotImplementedError("TODO 2: build the reply datagram")


def main() -> None:
    sock = open_socket(int(sys.argv[1]))
    while True:
        data, sender = sock.recvfrom(65535)  # one whole datagram, and who sent it
        sock.sendto(reply(data, sender), sender)


if __name__ == "__main__":
    main()
