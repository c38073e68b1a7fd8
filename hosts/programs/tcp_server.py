"""TCP servers for the socket exercises.

  tcp_server.py many IP PORT N     accept N clients (waiting at most 15 s for them: their starts
                                   can be slow on a loaded machine), hold them all open at once
                                   (until SIGUSR1, at most 5 s), then echo each client's bytes
                                   back to it alone
  tcp_server.py hold IP PORT...    listen on every PORT and keep each connection open until its
                                   client closes it; exits once all accepted ones are closed

Both set SO_REUSEADDR on the listener, as real servers do, and let the clients close first, so
TIME_WAIT stays on the clients and never blocks the next server on these ports.
"""

import json
import selectors
import signal
import socket
import sys
import time

ACCEPT_WAIT = 15.0
HOLD_WAIT = 5.0
HOLD_DEADLINE = 10.0


def listener(ip: str, port: int, backlog: int = 16) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen(backlog)
    return s


def recv_to_eof(c: socket.socket, limit: int = 65536) -> bytes:
    data = b""
    while len(data) < limit:
        chunk = c.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def many(ip: str, port: int, n: int) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    lst = listener(ip, port, n + 4)
    print(json.dumps({"listening": [ip, port]}), flush=True)
    conns = []
    deadline = time.monotonic() + ACCEPT_WAIT
    while len(conns) < n and (left := deadline - time.monotonic()) > 0:
        lst.settimeout(left)
        try:
            c, peer = lst.accept()
        except TimeoutError:
            break
        conns.append((c, peer, c.getsockname()))
    # Every accepted connection is open at this moment: the orchestrator reads `ss` now.
    print(json.dumps({"holding": len(conns)}), flush=True)
    signal.sigtimedwait({signal.SIGUSR1}, HOLD_WAIT)
    served = []
    for c, peer, local in conns:
        c.settimeout(3)
        try:
            token = recv_to_eof(c)  # the client shuts its write side after its token
            c.sendall(token)  # the reply goes to this connection, and so to this client only
            error = None
        except OSError as err:
            token, error = b"", str(err)
        c.close()
        served.append(
            {
                "peer": list(peer),
                "local": list(local),
                "token": token.decode(errors="replace"),
                "error": error,
            }
        )
    lst.close()
    print(json.dumps({"accepted": served}), flush=True)


def hold(ip: str, ports: list[int]) -> None:
    sel = selectors.DefaultSelector()
    for port in ports:
        sel.register(listener(ip, port), selectors.EVENT_READ, "listen")
    print(json.dumps({"listening": [ip, ports]}), flush=True)
    accepted, open_conns = [], 0
    deadline = time.monotonic() + HOLD_DEADLINE
    while time.monotonic() < deadline and not (accepted and open_conns == 0):
        for key, _ in sel.select(timeout=0.2):
            if key.data == "listen":
                c, peer = key.fileobj.accept()
                accepted.append({"peer": list(peer), "local": list(c.getsockname())})
                sel.register(c, selectors.EVENT_READ, "conn")
                open_conns += 1
                print(json.dumps({"accepted": accepted[-1]}), flush=True)
            else:
                try:
                    chunk = key.fileobj.recv(4096)
                except OSError:
                    chunk = b""
                if not chunk:  # the client closed first; close our side too
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
                    open_conns -= 1
    print(json.dumps({"accepted": accepted, "still_open": open_conns}), flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "many":
        many(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        hold(sys.argv[2], [int(p) for p in sys.argv[3:]])
