"""Hostile tcp-echo submission: a socat echo server (`socat TCP-LISTEN:PORT,fork EXEC:cat`)
does the work; the program itself is one line.

What it attacks: a grader that lets the submission run a tool that does the assignment for it.
"""

import os
import sys

port = sys.argv[1]
os.execvp("socat", ["socat", f"TCP-LISTEN:{port},reuseaddr,fork", "EXEC:cat"])
