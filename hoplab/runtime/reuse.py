"""A lab kept up between test sessions (the pytest plugin's --hoplab-reuse), and its reset.

Bringing the default lab up costs seconds on every `pytest` run; when the topology and the
image have not changed, the next session attaches instead. Two things make that safe:

- one session at a time: an exclusive flock on a file named after the lab (the kernel drops it
  when the holder dies, so a killed session never leaves it held). A session that cannot take
  it gets a lab of its own; removal (`--hoplab-reuse=off`) never removes a lab someone holds.
- a reset, so no test sees what an earlier session left: programs hoplab started (and
  captures, which are tcpdump programs), participant programs, routes that are not the plan's,
  impairments, and the scratch files; then `up` puts the file's own impairments back and
  restarts any node that is still broken. A session does this as it lets go of the lab, and
  marks the lock file; the next session, finding the mark, only checks the plan (about 0.1 s
  instead of 1 s). Without the mark (the last session was killed) it resets on attach.

The lab carries no pytest owner labels and its name (ptr-...) is not a pt<pid>- name, so the
owner-pid reaping of crashed runs never takes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import tempfile
from pathlib import Path
from typing import IO

from hoplab.engine.interface import EngineAPI
from hoplab.errors import HoplabError
from hoplab.model.impair import TAG as LINK_TAG
from hoplab.runtime.lab import IMPAIR_TAG, NOBODY, RUN_ENV, SCRATCH, Lab, Node, _each_node

PREFIX = "ptr"

# One exec per node (in parallel), as root in the node; engine.run carries no run mark, so the
# exec and what it forks are never taken for a test's program. Programs: every process with a
# run mark (no session is attached, so every run is over) and every participant's (nobody),
# until two scans in a row find none (an exec in flight may start one late). Routes: every route
# the kernel did not make for a connected network goes, then the plan's (the entrypoint's
# HOPLAB_ROUTES, which every exec inherits) come back. Impairments: the root qdisc of every
# interface, and the iptables rules of Lab.impair and of link impairments (never the egress
# guard's). Then the scratch directory (logs, capture files).
RESET = f"""
quiet=0
for round in $(seq 40); do
    pids=$( (grep -lz '^{RUN_ENV}=' /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3; \\
             ps -u {NOBODY} -o pid=) | grep -vx "$$")
    if [ -z "$pids" ]; then quiet=$((quiet + 1)); [ $quiet -ge 2 ] && break; continue; fi
    quiet=0
    kill -9 $pids 2>/dev/null
    sleep 0.02
done
[ $quiet -ge 2 ] || exit 4
for family in -4 -6; do
    ip $family route show | grep -v ' proto kernel ' | sed -e 's/ linkdown//' \\
        -e "s/^/route del /" | ip $family -force -batch - 2>/dev/null
done
echo "${{HOPLAB_ROUTES:-}}" | tr ';' '\\n' | sed -e '/^ *$/d' -e 's/^/route replace /' \\
    | ip -batch - || exit 3
for dev in $(ls /sys/class/net); do tc qdisc del dev "$dev" root 2>/dev/null; done
iptables -S 2>/dev/null | grep -E -- '{IMPAIR_TAG}|{LINK_TAG}' | sed 's/^-A /-D /' \\
    | xargs -r -L1 iptables
rm -rf {SCRATCH}/* 2>/dev/null
exit 0
"""


def lab_name(rootdir: Path, topology: Path, host: str | None = None) -> str:
    """ptr-<8 hex>: one reused lab per host, project and topology file (not its content, so an
    edited file rebuilds the same lab rather than leaving the old one up)."""
    key = f"{host or socket.gethostname()}\0{rootdir.resolve()}\0{topology.resolve()}"
    return f"{PREFIX}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def lock_path(name: str) -> Path:
    """Where the attach lock of a reused lab lives: per user, in the temp directory."""
    return Path(tempfile.gettempdir()) / f"hoplab-reuse-{os.getuid()}" / f"{name}.lock"


class AttachLock:
    """An exclusive, non-blocking flock naming the session attached to a reused lab.

    The file holds the holder's pid for people; the lock itself is the kernel's, so it goes
    with the process however that ends. A session that put the lab right before it let go
    writes CLEAN in it (mark_clean); the next holder reads that (left_clean) and may skip the
    reset. Taking the lock wipes the mark, so a session that dies never leaves one.
    """

    CLEAN = "clean"

    def __init__(self, name: str) -> None:
        self.path = lock_path(name)
        self._file: IO[str] | None = None
        self.left_clean = False  # what the previous holder said when it let go

    def acquire(self) -> bool:
        """True if this process now holds it; False if another session does."""
        self.path.parent.mkdir(mode=0o700, exist_ok=True)
        f = self.path.open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        f.seek(0)
        self.left_clean = f.read().strip() == self.CLEAN
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        return True

    def mark_clean(self) -> None:
        """Say, for the next holder, that the lab was reset after its last use."""
        if self._file is not None:
            self._file.truncate(0)
            self._file.write(f"{self.CLEAN}\n")
            self._file.flush()

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    @property
    def held(self) -> bool:
        return self._file is not None


def reset(lab: Lab) -> None:
    """Put a reused lab back as its plan says, whatever the last session left in it.

    One exec per node, in parallel: a reused lab's set-up is this and a plan check (~0.3 s).
    """

    def one(node: Node) -> str:
        code, _out, err = lab.engine.run(node.container, ["sh", "-c", RESET])
        return "" if code == 0 else f"{node.name}: {err.decode(errors='replace').strip()}"

    failed = [e for e in _each_node(one, lab.nodes) if e]
    if failed:
        raise HoplabError("could not reset the reused lab: " + "; ".join(failed))


def remove(engine: EngineAPI, name: str) -> str:
    """Remove a reused lab unless a session holds it; says what happened, for the terminal."""
    lock = AttachLock(name)
    if not lock.acquire():
        return f"reused lab {name} is attached to another session: left up"
    try:
        if not engine.state(name).exists:
            return ""
        engine.down(name)
        return f"reused lab {name} removed"
    finally:
        lock.release()
