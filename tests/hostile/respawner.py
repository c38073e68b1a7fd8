"""Hostile tcp-echo submission: holds the port, never echoes, ignores SIGTERM, and moves to a new
pid every few milliseconds (fork, parent exits), so a sweep that lists pids and then kills them
keeps missing it. The listening socket is inherited by every copy.
"""

import os
import signal
import socket
import sys
import time

port = int(sys.argv[1])
signal.signal(signal.SIGTERM, signal.SIG_IGN)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", port))
s.listen()
os.setsid()
while True:
    try:
        if os.fork():
            os._exit(0)
    except OSError:
        pass
    time.sleep(0.005)
