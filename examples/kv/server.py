"""A tiny line-based key-value server over TCP: the example's "own code" under test.

    SET key value  -> OK
    GET key        -> VALUE value   (or MISSING)
    anything else  -> ERROR ...

Stdlib only, one thread per connection. It prints "listening on HOST:PORT" once bound, so a
test can start it and know the port is open without sleeping.
Usage: server.py [PORT] [HOST]
"""

from __future__ import annotations

import socketserver
import sys
import threading


class KVHandler(socketserver.StreamRequestHandler):
    store: dict[str, str] = {}
    lock = threading.Lock()

    def handle(self) -> None:
        for raw in self.rfile:
            self.wfile.write((self.answer(raw.decode(errors="replace").strip()) + "\n").encode())

    def answer(self, line: str) -> str:
        match line.split(maxsplit=2):
            case ["SET", key, value]:
                with self.lock:
                    self.store[key] = value
                return "OK"
            case ["GET", key]:
                with self.lock:
                    value = self.store.get(key)
                return "MISSING" if value is None else f"VALUE {value}"
            case _:
                return f"ERROR unknown command {line[:40]!r}"


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main() -> int:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 7070
    host = sys.argv[2] if len(sys.argv) > 2 else "0.0.0.0"
    with Server((host, port), KVHandler) as server:
        print(f"listening on {host}:{server.server_address[1]}", flush=True)
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
