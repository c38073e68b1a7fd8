"""Start a program in the background inside a node and wait until it says it is ready.

Runs in one exec: the orchestrator gets the pid back only once the program's log holds the ready
marker (a bounded wait on an event, not a fixed sleep), so no second round trip polls for it.
Usage: spawn.py LOG READY TIMEOUT -- CMD...     prints {"pid": N} or {"error": ...}
"""

import json
import os
import subprocess
import sys
import time


def main() -> int:
    log, ready, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    cmd = sys.argv[5:]
    os.makedirs(os.path.dirname(log) or ".", exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while True:
        with open(log, "rb") as f:
            text = f.read().decode(errors="replace")
        if not ready or ready in text:
            print(json.dumps({"pid": proc.pid}))
            return 0
        if proc.poll() is not None:
            print(json.dumps({"error": f"exited with {proc.returncode}", "log": text[-2000:]}))
            return 1
        if time.monotonic() > deadline:
            proc.kill()
            print(json.dumps({"error": f"not ready after {timeout}s", "log": text[-2000:]}))
            return 1
        time.sleep(0.01)


if __name__ == "__main__":
    sys.exit(main())
