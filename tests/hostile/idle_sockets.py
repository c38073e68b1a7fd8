"""Hostile tcp-echo submission that does no work: it holds an idle socket bound with
SO_REUSEPORT on the port and sleeps, relying on a server that root left running in the
participant's own lab (started from a terminal with `setsid env -i`, so no run mark).

What it attacks: a grader that grades in the participant's lab, where root can leave helpers.
"""

import socket
import sys
import time

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
time.sleep(3600)
