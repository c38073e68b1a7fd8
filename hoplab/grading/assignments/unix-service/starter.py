"""unix-service: a tiny key-value store behind a Unix socket file.

Protocol, one line per request and one line per reply (each ending in "\\n"):
    SET KEY VALUE  ->  OK
    GET KEY        ->  VALUE, or NONE if KEY was never set
A client may send several requests on one connection; what one client SETs, the next can GET.

usage: python3 unix_service.py PATH
hoplab runs it on srv with PATH /var/run/lab/kv.sock, where a crashed server left a stale file.
Check it with:  hoplab check unix-service    (the lesson: hoplab assignments unix-service)
"""

import socket
import sys


def remove_stale(path: str) -> None:
    """A socket file left by an earlier server makes bind() fail with EADDRINUSE."""
    # TODO 1: remove the file at path with os.unlink(path) (import os); a missing file is
    #         fine (FileNotFoundError).
    raise NotImplementedError(f"TODO 1: remove a stale socket file at {path}")


def answer(store: dict[str, str], line: str) -> str:
    """The reply to one request line (without its newline)."""
    words = line.split(maxsplit=2)
    if len(words) == 3 and words[0] == "SET":
        store[words[1]] = words[2]
        return "OK"
    # TODO 3: GET KEY -> the value stored under KEY, or "NONE".
    return "ERROR"


def serve(conn: socket.socket, store: dict[str, str]) -> None:
    """Answer every request line of one client, until it closes the connection."""
    # TODO 2: with conn.makefile("rwb") as stream: for each line in stream, write
    #         answer(store, line.decode().strip()).encode() + b"\n", then stream.flush().
    raise NotImplementedError("TODO 2: answer the client's lines")


def main() -> None:
    path = sys.argv[1]
    remove_stale(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)  # this creates the socket file
    server.listen()
    store: dict[str, str] = {}
    while True:
        conn, _ = server.accept()
        with conn:
            serve(conn, store)


if __name__ == "__main__":
    main()
