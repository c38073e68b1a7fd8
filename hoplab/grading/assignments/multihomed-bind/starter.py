"""multihomed-bind: a server that listens on this host's one address inside SUBNET.

usage: python3 multihomed_bind.py SUBNET PORT      e.g. 10.77.3.0/24 5100
srv has an address on lan2 and one on lan3. Given lan3's subnet, only srv's lan3 address may
answer; srv's lan2 address and 127.0.0.1 must refuse. hoplab runs it twice: with lan3's subnet
and with lan2's (subnets change from lab to lab, so find the address at run time).
Check it with:  hoplab check multihomed-bind (the lesson: hoplab assignments multihomed-bind)
"""

import contextlib
import json
import socket
import sys


def my_address_in(subnet: str) -> str:
    """This host's address inside subnet."""
    # TODO 1: find it. One way: connect() a UDP socket to an address inside the subnet (no
    #         packet is sent; the kernel only picks a route and a source address) and read
    #         getsockname(). Check that it really is inside the subnet (import ipaddress;
    #         ipaddress.ip_address(a) in ipaddress.ip_network(subnet)).
    # TODO 2: return that address: "0.0.0.0" means every address of this host.
    return "0.0.0.0"


def reply(conn: socket.socket) -> None:
    """Tell the client what this connection looks like from here (given: do not change).

    The client hangs up first, so TIME_WAIT stays on its side and the port is free again.
    """
    with conn:
        told = {"local": list(conn.getsockname()), "peer": list(conn.getpeername())}
        conn.sendall(json.dumps(told).encode() + b"\n")
        conn.settimeout(2)
        with contextlib.suppress(OSError):
            conn.recv(1)


def main() -> None:
    subnet, port = sys.argv[1], int(sys.argv[2])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((my_address_in(subnet), port))
    server.listen()
    while True:
        conn, _ = server.accept()
        reply(conn)


if __name__ == "__main__":
    main()
