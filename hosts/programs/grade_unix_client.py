"""hoplab's own Unix-socket client for grading a participant's service.

grade_unix_client.py ask PATH FILE     connect to PATH, send each line of FILE (root's, 0600:
                                        the server runs beside this client and could read
                                        argv; the file is removed once read) and read one
                                        reply line for it; prints JSON
grade_unix_client.py stale PATH         bind PATH and exit without unlinking: a stale socket file
"""

import json
import os
import socket
import sys
import time


def ask(path: str, lines: list[str]) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(path)
    except OSError as err:
        print(json.dumps({"connect": f"{type(err).__name__}: {err}", "replies": []}))
        return
    replies, buf = [], b""
    deadline = time.monotonic() + 3
    for line in lines:
        s.sendall(line.encode() + b"\n")
        while b"\n" not in buf and time.monotonic() < deadline:
            try:
                chunk = s.recv(4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
        reply, _, buf = buf.partition(b"\n")
        replies.append(reply.decode(errors="replace"))
    s.close()
    print(json.dumps({"connect": "ok", "replies": replies}))


def stale(path: str) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    print(json.dumps({"stale": path}))


if __name__ == "__main__":
    if sys.argv[1] == "ask":
        with open(sys.argv[3]) as f:
            asks = f.read().splitlines()
        os.unlink(sys.argv[3])
        ask(sys.argv[2], asks)
    else:
        stale(sys.argv[2])
