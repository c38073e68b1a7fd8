"""Send commands to the key-value server over one connection; print one reply per line.

Usage: client.py HOST PORT COMMAND...   (each COMMAND is one line, e.g. "SET a 1")
Exits 1 if the server closes early; the socket timeout bounds every wait.
"""

from __future__ import annotations

import socket
import sys


def main() -> int:
    host, port, commands = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    with socket.create_connection((host, port), timeout=10) as sock:
        replies = sock.makefile("r", encoding="utf-8")
        for command in commands:
            sock.sendall(command.encode() + b"\n")
            reply = replies.readline()
            if not reply:
                print("server closed the connection", file=sys.stderr)
                return 1
            print(reply.rstrip("\n"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
