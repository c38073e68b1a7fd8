"""lossy-client, reference solution: stop-and-wait with a timeout and resends.

usage: python3 lossy_client.py HOST PORT COUNT     prints each reply, one per line, in order
"""

import socket
import sys

TIMEOUT = 0.5  # seconds to wait for a reply before resending
TRIES = 10


def ask(sock: socket.socket, server: tuple[str, int], n: int) -> str:
    request = f"REQ {n}".encode()
    for _ in range(TRIES):
        sock.sendto(request, server)
        try:
            while True:
                data, _ = sock.recvfrom(2048)
                reply = data.decode()
                if reply.split()[:2] == ["ACK", str(n)]:  # ignore a late reply to an older one
                    return reply
        except TimeoutError:
            continue  # lost on the way (or its reply was): send it again
    raise SystemExit(f"no reply to request {n} after {TRIES} tries")


def main() -> None:
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(TIMEOUT)
    for n in range(count):
        print(ask(sock, (host, port), n), flush=True)


if __name__ == "__main__":
    main()
