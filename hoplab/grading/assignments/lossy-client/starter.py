"""lossy-client: a UDP request/response client that gets every answer across a lossy router.

Protocol: send the datagram b"REQ N"; the server answers b"ACK N TAG". Requests 0 .. COUNT-1 go
one after another; print each reply, exactly as received, on a line of its own, in order.
hoplab runs it on alice while r1 drops every 3rd request on the way to srv.

usage: python3 lossy_client.py HOST PORT COUNT
Check it with:  hoplab check lossy-client    (the lesson: hoplab assignments lossy-client)
"""

import socket
import sys


def ask(sock: socket.socket, server: tuple[str, int], n: int) -> str:
    """Send request n and return the server's reply to it."""
    sock.sendto(f"REQ {n}".encode(), server)
    data, _ = sock.recvfrom(2048)
    # TODO 1: this waits for ever when the router dropped the request. Give the socket a
    #         timeout (sock.settimeout(0.5) in main) and, on TimeoutError, send the same
    #         request again (a few tries, then give up with an error).
    # TODO 2: a late reply to an earlier request may arrive: keep reading until the reply
    #         starts with f"ACK {n} ".
    return data.decode()


def main() -> None:
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for n in range(count):
        print(ask(sock, (host, port), n), flush=True)


if __name__ == "__main__":
    main()
