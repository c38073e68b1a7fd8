"""Who closes first, and what TIME_WAIT then does to the server's port.

tcp_timewait.py serve IP PORT     listen (with SO_REUSEADDR, as servers do) and serve two
                                  clients: each first sends "client" or "server", the side that
                                  is to close first
tcp_timewait.py clients IP PORT   two connections: on the first the client closes first, on
                                  the second the server does; prints both local addresses
tcp_timewait.py rebind IP PORT    bind IP:PORT again, first without SO_REUSEADDR, then with it
"""

import errno
import json
import socket
import sys

WAIT = 5.0


def errname(err: OSError) -> str:
    if isinstance(err, TimeoutError) or err.errno is None:
        return "TIMEOUT"
    return errno.errorcode.get(err.errno, str(err.errno))


def read_line(c: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n") and (chunk := c.recv(64)):
        data += chunk
    return data.strip()


def serve(ip: str, port: int) -> None:
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((ip, port))
    lst.listen(4)
    lst.settimeout(WAIT)
    print(json.dumps({"listening": [ip, port]}), flush=True)
    served = []
    for _ in range(2):
        try:
            c, peer = lst.accept()
        except TimeoutError:
            break
        c.settimeout(WAIT)
        who = read_line(c)
        if who == b"server":
            c.sendall(b"bye\n")  # and close at once: our FIN goes first
        else:
            while c.recv(64):  # wait for the client's FIN, then close second
                pass
        c.close()
        served.append({"peer": list(peer), "first": who.decode(errors="replace")})
    lst.close()
    print(json.dumps({"served": served}), flush=True)


def clients(ip: str, port: int) -> None:
    local, errors = {}, {}
    for who in ("client", "server"):
        try:
            s = socket.create_connection((ip, port), timeout=WAIT)
            local[who] = list(s.getsockname())
            s.sendall(who.encode() + b"\n")
            if who == "server":
                while s.recv(64):  # the server closes first; we close after its FIN
                    pass
            s.close()
        except OSError as err:
            errors[who] = errname(err)
    print(json.dumps({"local": local, "errors": errors}))


def rebind(ip: str, port: int) -> None:
    out = {}
    for name, reuse in (("without", 0), ("with", 1)):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
            s.listen(1)
            out[name] = "ok"
        except OSError as err:
            out[name] = errname(err)
        s.close()
    print(json.dumps(out))


if __name__ == "__main__":
    {"serve": serve, "clients": clients, "rebind": rebind}[sys.argv[1]](
        sys.argv[2], int(sys.argv[3])
    )
