"""Which binds the kernel allows: a socket is an address, a protocol and a port.

  sock_bind.py ADDR_A ADDR_B PORT    runs every bind experiment in one process and prints JSON

No socket here sets SO_REUSEADDR: these are the kernel's default rules.
"""

import errno
import json
import socket
import subprocess
import sys

KINDS = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}


def attempt(kind: str, addr: str, port: int, held: list) -> dict:
    """Bind (and listen, for TCP); keep the socket open in `held` when it worked."""
    s = socket.socket(socket.AF_INET, KINDS[kind])
    try:
        s.bind((addr, port))
        if kind == "tcp":
            s.listen()
    except OSError as err:
        s.close()
        result = errno.errorcode.get(err.errno, str(err.errno))
    else:
        held.append(s)
        result = "ok"
    return {"proto": kind, "addr": addr, "port": port, "result": result}


def table(port: int) -> list[str]:
    """The kernel's socket table for this port, as ss prints it."""
    out = subprocess.run(
        ["ss", "-H", "-ltun", f"sport = :{port}"], capture_output=True, text=True, timeout=5
    ).stdout
    return [" ".join(line.split()) for line in out.splitlines() if line.strip()]


def release(held: list) -> None:
    while held:
        held.pop().close()


def main() -> None:
    addr_a, addr_b, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    held: list = []
    steps = {}

    # TCP and UDP on the same address and port: two different sockets.
    tcp = attempt("tcp", addr_a, port, held)
    udp = attempt("udp", addr_a, port, held)
    # A second TCP socket on exactly the same address and port.
    again = attempt("tcp", addr_a, port, held)
    steps["tcp_and_udp"] = {"binds": [tcp, udp, again], "ss": table(port)}
    release(held)

    # One port, two addresses of the same host.
    first = attempt("tcp", addr_a, port, held)
    second = attempt("tcp", addr_b, port, held)
    steps["two_addresses"] = {"binds": [first, second], "ss": table(port)}
    release(held)

    # 0.0.0.0 takes the port on every address, so a specific address no longer gets it.
    wild = attempt("tcp", "0.0.0.0", port, held)
    specific = attempt("tcp", addr_a, port, held)
    steps["wildcard_first"] = {"binds": [wild, specific], "ss": table(port)}
    release(held)

    print(json.dumps(steps))


if __name__ == "__main__":
    main()
