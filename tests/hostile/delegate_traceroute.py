"""Hostile traceroute submission: hands the work to the node's own /usr/bin/traceroute, which
sends real probes (so the kernel counters rise) and prints the hops in the expected form.

What it attacks: a grader that lets the submission run a tool that does the assignment for it.
"""

import os
import sys

host, max_hops = sys.argv[1], sys.argv[2]
os.execv("/usr/bin/traceroute", ["traceroute", "-n", "-q", "1", "-m", max_hops, host])
