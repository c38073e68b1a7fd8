"""Hostile tcp-echo submission: listens and never echoes; a watcher it leaves behind fills the
node's pids limit the moment the graded process is stopped, so that no exec can start in the node
afterwards (not even the one that would kill it) and the next grading has no lab to run in.
"""

import os
import signal
import socket
import sys
import time

port = int(sys.argv[1])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", port))
s.listen()
main = os.getpid()
if os.fork() == 0:
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while os.getppid() == main:  # until the graded process is gone
        time.sleep(0.01)
    while True:  # fill: every child sleeps for ever and ignores SIGTERM
        try:
            if os.fork() == 0:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                while True:
                    signal.pause()
        except OSError:
            time.sleep(0.01)
while True:
    conn, _ = s.accept()
    conn.close()
