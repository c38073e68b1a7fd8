"""TCP is a byte stream, UDP carries datagrams; and how many sockets each server needs.

sock_stream.py udp-recv PORT              datagrams until the end marker; prints their sizes
sock_stream.py tcp-recv PORT              one connection; prints the size of each recv() chunk
sock_stream.py send udp|tcp HOST PORT     sends messages of 100, 200 and 300 bytes
sock_stream.py udp-serve PORT N           one socket answers N clients, then counts its sockets
sock_stream.py udp-ask HOST PORT          one question, one answer
sock_stream.py tcp-serve PORT N           accepts N clients, holds them, counts its sockets
sock_stream.py tcp-hold HOST PORT         connects and stays connected until the server says go
"""

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys

SIZES = [100, 200, 300]
END = b"END"  # after the three messages, UDP only: tells the receiver to stop counting
WAIT = 5.0  # cap on any single wait; the lab delivers in milliseconds


def messages() -> list[bytes]:
    return [bytes([ord("A") + i]) * n for i, n in enumerate(SIZES)]


def bound(kind: int, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("0.0.0.0", port))
    s.settimeout(WAIT)
    if kind == socket.SOCK_STREAM:
        s.listen(16)
    print(json.dumps({"listening": port}), flush=True)
    return s


def udp_recv(port: int) -> None:
    s = bound(socket.SOCK_DGRAM, port)
    sizes, data, error = [], b"", None
    try:
        while True:
            dgram, _peer = s.recvfrom(65535)
            if dgram == END:
                break
            sizes.append(len(dgram))
            data += dgram
    except TimeoutError:
        error = f"no end marker within {WAIT}s"
    print(
        json.dumps(
            {
                "datagrams": sizes,
                "total": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "error": error,
            }
        )
    )


def tcp_recv(port: int) -> None:
    s = bound(socket.SOCK_STREAM, port)
    chunks, data, error = [], b"", None
    try:
        conn, _peer = s.accept()
        conn.settimeout(WAIT)
        while chunk := conn.recv(65536):
            chunks.append(len(chunk))
            data += chunk
    except TimeoutError:
        error = f"stream did not end within {WAIT}s"
    print(
        json.dumps(
            {
                "chunks": chunks,
                "total": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "error": error,
            }
        )
    )


def send(kind: str, host: str, port: int) -> None:
    msgs = messages()
    if kind == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for m in [*msgs, END]:
            s.sendto(m, (host, port))
    else:
        s = socket.create_connection((host, port), timeout=WAIT)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each send() its own segment
        for m in msgs:
            s.sendall(m)
    s.close()
    data = b"".join(msgs)
    print(
        json.dumps(
            {
                "sent": [len(m) for m in msgs],
                "total": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    )


def own_sockets(proto: str) -> dict:
    """This process's sockets: the fds in /proc/self/fd that are sockets, and ss's view."""
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                fds.append(int(fd))
        except OSError:
            continue  # the fd of listdir itself is gone by now
    out = subprocess.run(
        ["ss", "-H", "-n", "-p", "-a", f"-{proto[0]}"], capture_output=True, text=True, timeout=5
    ).stdout
    mine = [
        " ".join(line.split()[:6]) for line in out.splitlines() if f"pid={os.getpid()}," in line
    ]
    return {"pid": os.getpid(), "socket_fds": sorted(fds), "ss": mine}


def udp_serve(port: int, n: int) -> None:
    s = bound(socket.SOCK_DGRAM, port)
    peers, error = [], None
    try:
        while len(peers) < n:
            data, peer = s.recvfrom(2048)
            s.sendto(b"hello " + data, peer)  # same socket for every client
            if list(peer) not in peers:
                peers.append(list(peer))
    except TimeoutError:
        error = f"only {len(peers)} clients within {WAIT}s"
    print(json.dumps({"peers": peers, "error": error, **own_sockets("udp")}))


def udp_ask(host: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(WAIT)
    s.sendto(socket.gethostname().encode(), (host, port))
    reply, _ = s.recvfrom(2048)
    print(json.dumps({"local": list(s.getsockname()), "reply": reply.decode()}))


def tcp_serve(port: int, n: int) -> None:
    s = bound(socket.SOCK_STREAM, port)
    conns, error = [], None
    try:
        while len(conns) < n:
            conn, _peer = s.accept()  # a new socket per client
            conns.append(conn)
    except TimeoutError:
        error = f"only {len(conns)} clients within {WAIT}s"
    peers = [list(c.getpeername()) for c in conns]
    print(json.dumps({"peers": peers, "error": error, **own_sockets("tcp")}), flush=True)
    # Tell each client it may go, and let it hang up first: TIME_WAIT then stays with the
    # client, and this port can be bound again at once by the next run.
    for c in conns:
        c.settimeout(WAIT)
        try:
            c.sendall(b".")
            c.recv(1)
        except OSError:
            pass
        c.close()


def tcp_hold(host: str, port: int) -> None:
    s = socket.create_connection((host, port), timeout=WAIT)
    print(json.dumps({"connected": list(s.getsockname())}), flush=True)
    s.settimeout(WAIT * 3)
    with contextlib.suppress(TimeoutError):
        s.recv(1)  # the server says when it has counted its sockets
    s.close()


def main() -> None:
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "udp-recv":
        udp_recv(int(args[0]))
    elif cmd == "tcp-recv":
        tcp_recv(int(args[0]))
    elif cmd == "send":
        send(args[0], args[1], int(args[2]))
    elif cmd == "udp-serve":
        udp_serve(int(args[0]), int(args[1]))
    elif cmd == "udp-ask":
        udp_ask(args[0], int(args[1]))
    elif cmd == "tcp-serve":
        tcp_serve(int(args[0]), int(args[1]))
    elif cmd == "tcp-hold":
        tcp_hold(args[0], int(args[1]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
