"""multihomed-bind, reference solution: find this host's address in SUBNET, bind only that.

usage: python3 multihomed_bind.py SUBNET PORT
"""

import contextlib
import ipaddress
import json
import socket
import sys


def my_address_in(subnet: str) -> str:
    """Ask the kernel which source address it would use towards the subnet: that is ours.

    connect() on a UDP socket sends nothing; it only picks the route and the source address.
    """
    net = ipaddress.ip_network(subnet)
    probe = str(net.network_address + 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((probe, 9))
        mine = s.getsockname()[0]
    if ipaddress.ip_address(mine) not in net:
        raise SystemExit(f"this host has no address in {subnet} (the route chose {mine})")
    return mine


def main() -> None:
    subnet, port = sys.argv[1], int(sys.argv[2])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((my_address_in(subnet), port))
    server.listen()
    while True:
        conn, _ = server.accept()
        reply(conn)


def reply(conn: socket.socket) -> None:
    """Tell the client what this connection looks like from here; let the client hang up first,
    so TIME_WAIT stays on its side and the port is free for the next run."""
    with conn:
        told = {"local": list(conn.getsockname()), "peer": list(conn.getpeername())}
        conn.sendall(json.dumps(told).encode() + b"\n")
        conn.settimeout(2)
        with contextlib.suppress(OSError):
            conn.recv(1)


if __name__ == "__main__":
    main()
