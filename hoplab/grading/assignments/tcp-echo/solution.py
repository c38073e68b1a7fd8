"""tcp-echo, reference solution: a thread per client, so no client waits for another.

usage: python3 tcp_echo.py PORT
"""

import socket
import sys
import threading


def handle(conn: socket.socket) -> None:
    """Echo every byte this client sends, until it has finished (recv() returns b'')."""
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)


def main() -> None:
    port = int(sys.argv[1])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen()
    while True:
        conn, _peer = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
