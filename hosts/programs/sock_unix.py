"""A Unix domain socket: a file-system name for IPC on one host.

sock_unix.py serve PATH    bind PATH, answer one client, exit WITHOUT unlinking PATH
sock_unix.py ask PATH      stat PATH, connect, one request and its reply
sock_unix.py stale PATH    what a leftover socket file does to the next bind, then clean it
"""

import errno
import json
import os
import socket
import stat
import sys

WAIT = 5.0
REQUEST = b"SELECT 1"


def err_name(err: OSError) -> str:
    return errno.errorcode.get(err.errno, str(err.errno))


def describe(path: str) -> dict:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {"exists": False}
    return {
        "exists": True,
        "is_socket": stat.S_ISSOCK(st.st_mode),
        "mode": stat.filemode(st.st_mode),
    }


def serve(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    s.settimeout(WAIT)
    print(json.dumps({"listening": path}), flush=True)
    conn, _ = s.accept()
    conn.settimeout(WAIT)
    request = conn.recv(1024)
    conn.sendall(b"db says: " + request)
    conn.close()
    s.close()  # closing does not remove the file: that is what makes it stale
    print(json.dumps({"served": request.decode()}))


def ask(path: str) -> None:
    before = describe(path)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(WAIT)
    c.connect(path)
    c.sendall(REQUEST)
    reply = c.recv(1024)
    c.close()
    print(json.dumps({"path": before, "request": REQUEST.decode(), "reply": reply.decode()}))


def stale(path: str) -> None:
    left = describe(path)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        c.connect(path)
        connect = "ok"
    except OSError as err:
        connect = err_name(err)
    c.close()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(path)
        bind_stale = "ok"
    except OSError as err:
        bind_stale = err_name(err)
    s.close()
    os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(path)
        bind_after = "ok"
        os.unlink(path)
    except OSError as err:
        bind_after = err_name(err)
    s.close()
    print(
        json.dumps(
            {
                "left_behind": left,
                "connect": connect,
                "bind_stale": bind_stale,
                "bind_after_unlink": bind_after,
            }
        )
    )


if __name__ == "__main__":
    {"serve": serve, "ask": ask, "stale": stale}[sys.argv[1]](sys.argv[2])
