"""hoplab's own TCP clients for grading a participant's echo server.

grade_tcp_clients.py hold HOST PORT N HOLD     connect N clients, send a token on each (all sent
                                               before any reply is read), read each echo; print
                                               JSON and the line "holding"; keep every connection
                                               open until SIGUSR1 (at most HOLD s), then close
grade_tcp_clients.py bulk HOST PORT BYTES      send BYTES while reading the echo in parallel, then
                                               shut the write side and wait for the server to close
"""

import hashlib
import json
import os
import random
import signal
import socket
import sys
import threading
import time

READ_WAIT = 3.0  # a working echo server answers in milliseconds


def read_exactly(s: socket.socket, size: int, deadline: float) -> bytes:
    got = b""
    while len(got) < size:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            chunk = s.recv(size - len(got))
        except (TimeoutError, OSError):
            break
        if not chunk:
            break
        got += chunk
    return got


def hold(host: str, port: int, n: int, hold_for: float) -> None:
    name = socket.gethostname()
    clients, results = [], []
    for i in range(n):
        token = f"{name}-{i}-{os.urandom(4).hex()}\n"
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(3)
        try:
            s.connect((host, port))
            results.append({"token": token, "local": list(s.getsockname()), "connect": "ok"})
            clients.append(s)
        except OSError as err:
            results.append({"token": token, "connect": type(err).__name__ + f": {err}"})
            clients.append(None)
    for s, r in zip(clients, results, strict=True):
        if s:
            s.sendall(r["token"].encode())
    deadline = time.monotonic() + READ_WAIT
    for s, r in zip(clients, results, strict=True):
        if s:
            r["echo"] = read_exactly(s, len(r["token"]), deadline).decode(errors="replace")
    released = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: released.set())
    print(json.dumps({"clients": results}), flush=True)
    print("holding", flush=True)
    released.wait(hold_for)
    for s in clients:
        if s:
            s.close()
    print(json.dumps({"clients": results, "released": released.is_set()}), flush=True)


def bulk(host: str, port: int, size: int) -> None:
    data = random.Random(size).randbytes(size)
    report = {"sent": size, "sha_sent": hashlib.sha256(data).hexdigest(), "got": 0}
    try:
        s = socket.create_connection((host, port), timeout=3)
    except OSError as err:
        sha_none = hashlib.sha256(b"").hexdigest()
        report |= {"sha_got": sha_none, "server_closed": False, "error": f"connect: {err}"}
        print(json.dumps(report))
        return
    received = bytearray()
    closed = threading.Event()

    def reader() -> None:
        s.settimeout(8)
        try:
            while chunk := s.recv(65536):
                received.extend(chunk)
            closed.set()
        except OSError:
            pass

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    error = None
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)  # "I am done": a good server echoes the rest, then closes
    except OSError as err:
        error = f"{type(err).__name__}: {err}"
    t.join(10)
    report |= {
        "got": len(received),
        "sha_got": hashlib.sha256(bytes(received)).hexdigest(),
        "server_closed": closed.is_set(),
        "error": error,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    if sys.argv[1] == "hold":
        hold(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    else:
        bulk(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
