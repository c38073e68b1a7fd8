"""A bulk TCP transfer whose connection stays open until told, so its sockets can be looked at.

hop_transfer.py serve PORT TIMEOUT
    accepts one connection, reads an 8-byte length and that many bytes, answers with their
    sha256, then waits for the peer to close; prints what it received
hop_transfer.py send HOST PORT SIZE RELEASE HOLD
    sends SIZE random bytes, reads the answer, prints {"phase": "holding", ...}, then keeps the
    connection open until the file RELEASE exists (at most HOLD seconds) and closes
hop_transfer.py relay PORT HOST HOST_PORT TIMEOUT
    a proxy: accepts one connection and copies bytes both ways to HOST:HOST_PORT
"""

import contextlib
import hashlib
import json
import os
import selectors
import socket
import struct
import sys
import time


def recv_exact(conn: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = conn.recv(min(65536, n - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def serve(port: int, timeout: float) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(1)
    s.settimeout(timeout)
    print(json.dumps({"listening": port}), flush=True)
    try:
        conn, peer = s.accept()
        conn.settimeout(timeout)
        (size,) = struct.unpack("!Q", recv_exact(conn, 8))
        data = recv_exact(conn, size)
        digest = hashlib.sha256(data).hexdigest()
        conn.sendall(json.dumps({"bytes": len(data), "sha256": digest}).encode() + b"\n")
    except (OSError, struct.error) as err:
        print(json.dumps({"error": f"{type(err).__name__}: {err}"}), flush=True)
        return
    result = {
        "peer": list(peer),
        "local": list(conn.getsockname()),
        "bytes": len(data),
        "sha256": digest,
    }
    print(json.dumps(result), flush=True)
    with contextlib.suppress(OSError):
        recv_exact(conn, 1)  # the client closes once it has been looked at
    conn.close()


def send(host: str, port: int, size: int, release: str, hold: float) -> None:
    data = os.urandom(size)
    out = {"phase": "failed", "sent": 0, "sha256": hashlib.sha256(data).hexdigest()}
    try:
        s = socket.create_connection((host, port), timeout=5)
        out |= {"local": list(s.getsockname()), "peer": list(s.getpeername())}
        s.sendall(struct.pack("!Q", size) + data)
        out["sent"] = size
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        out |= {"phase": "holding", "reply": json.loads(reply or b"{}")}
    except (OSError, ValueError) as err:
        out["error"] = f"{type(err).__name__}: {err}"
        print(json.dumps(out), flush=True)
        return
    print(json.dumps(out), flush=True)
    deadline = time.monotonic() + hold
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.01)
    s.close()
    print(json.dumps(out | {"phase": "closed"}), flush=True)


def relay(port: int, host: str, host_port: int, timeout: float) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(1)
    s.settimeout(timeout)
    print(json.dumps({"listening": port}), flush=True)
    a, _ = s.accept()
    b = socket.create_connection((host, host_port), timeout=timeout)
    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, b)
    sel.register(b, selectors.EVENT_READ, a)
    open_ends = 2
    while open_ends:
        events = sel.select(timeout)
        if not events:
            break
        for key, _ in events:
            data = key.fileobj.recv(65536)
            if data:
                key.data.sendall(data)
            else:
                sel.unregister(key.fileobj)
                key.data.shutdown(socket.SHUT_WR)
                open_ends -= 1
    print(json.dumps({"relayed": True}), flush=True)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "serve":
        serve(int(args[0]), float(args[1]))
    elif cmd == "send":
        send(args[0], int(args[1]), int(args[2]), args[3], float(args[4]))
    else:
        relay(int(args[0]), args[1], int(args[2]), float(args[3]))
