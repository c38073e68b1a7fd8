"""tcp-echo: a TCP echo server that serves several clients at once.

usage: python3 tcp_echo.py PORT
hoplab runs it on srv and connects from alice (two routers away), carol and bob.
Check it with:  hoplab check tcp-echo        (the lesson: hoplab assignments tcp-echo)
"""

import socket
import sys


def listen(port: int) -> socket.socket:
    """A TCP socket listening on every address of this host, on port."""
    # TODO 1: make a TCP socket (AF_INET, SOCK_STREAM), set SO_REUSEADDR, bind it to
    #         ("0.0.0.0", port), listen(), and return it.
    raise NotImplementedError(f"TODO 1: listen on port {port}")


def handle(conn: socket.socket) -> None:
    """Serve one client: send back every byte it sends, until it has finished."""
    # TODO 2: loop: data = conn.recv(65536); b"" means the client has finished: leave the
    #         loop and close conn. Otherwise send it all back with conn.sendall(data).
    raise NotImplementedError("TODO 2: echo what this client sends")


def main() -> None:
    listener = listen(int(sys.argv[1]))
    while True:
        conn, _peer = listener.accept()
        # TODO 3: this serves one client until it leaves, and everyone else waits. Serve each
        #         client in a thread of its own and go straight back to accept() (import
        #         threading; threading.Thread(target=handle, args=(conn,), daemon=True).start()).
        handle(conn)


if __name__ == "__main__":
    main()
