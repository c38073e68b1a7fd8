"""unix-service, reference solution: a key-value store behind a Unix socket file.

usage: python3 unix_service.py PATH
"""

import contextlib
import os
import socket
import sys


def answer(store: dict[str, str], line: str) -> str:
    """SET KEY VALUE -> OK; GET KEY -> VALUE, or NONE when the key was never set."""
    words = line.split(maxsplit=2)
    if len(words) == 3 and words[0] == "SET":
        store[words[1]] = words[2]
        return "OK"
    if len(words) == 2 and words[0] == "GET":
        return store.get(words[1], "NONE")
    return "ERROR"


def main() -> None:
    path = sys.argv[1]
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a stale socket file from an earlier run would make bind() fail
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()
    store: dict[str, str] = {}
    while True:
        conn, _ = server.accept()
        with conn, conn.makefile("rwb") as stream:
            for raw in stream:
                stream.write(answer(store, raw.decode().strip()).encode() + b"\n")
                stream.flush()


if __name__ == "__main__":
    main()
