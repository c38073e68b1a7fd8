"""Hostile tcp-echo submission: runs hoplab's own in-node echo server (/opt/hoplab/echo.py) in
its place, under its own name.

What it attacks: a grader whose own in-node programs the submission can read and run.
"""

import os
import sys

port = sys.argv[1]
os.execv(sys.executable, [sys.executable, "-u", "/opt/hoplab/echo.py", port])
