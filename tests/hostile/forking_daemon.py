"""Hostile tcp-echo submission: the graded process exits at once and leaves a double-forked
daemon (a session of its own) that holds the port, accepts and never echoes.

What it attacks: a grader that kills only the process it started, and the next participant,
whose server would meet EADDRINUSE on the port.
"""

import os
import socket
import sys

port = int(sys.argv[1])
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", port))
s.listen()
held = []
while True:
    conn, _ = s.accept()
    held.append(conn)  # never answers
