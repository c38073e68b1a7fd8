"""The learner's own sockets in a node: `ss -p` joined with each holder's run mark.

Every exec hoplab makes carries the run mark (RUN_ENV in hoplab.runtime.lab), and so does every
process it starts. A socket counts as the learner's when no process holding it carries the mark
or runs as nobody (participant code under grading), as hoplab.runtime.listeners judges foreign
listeners; this module reads every state (connections, Unix sockets), not only listeners:
what hoplab's exercises or this very check started never satisfies a step. Sockets no process
in the node holds (Docker's DNS listener on 127.0.0.11 belongs to dockerd) are left out.
One exec per node (~55 ms): ss and the /proc reads happen in the same python3 -c.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hoplab.runtime.lab import NOBODY, RUN_ENV

if TYPE_CHECKING:
    from hoplab.runtime.lab import Node

# argv: SS-FLAGS. Prints one JSON list: [netid, state, local, peer, [[pid, marked, cmd]...]];
# for a Unix socket, local and peer are paths (* when unnamed, @name when abstract).
_READ = r"""
import json, os, re, subprocess, sys
out = subprocess.run(["ss", "-Hanp", *sys.argv[1:]], capture_output=True, text=True).stdout
def holder(pid):
    try:
        with open("/proc/%s/environ" % pid, "rb") as f:
            marked = any(e.startswith(b"RUN_ENV=") for e in f.read().split(b"\0"))
        # participant code runs as nobody (and its environ is closed to root): never a learner's
        marked = marked or os.stat("/proc/" + pid).st_uid == NOBODY
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    return [int(pid), marked, cmd[:200]]
rows = []
for line in out.splitlines():
    parts = line.split()
    if len(parts) < 6:
        continue
    pids = sorted(set(re.findall(r"pid=(\d+)", line)), key=int)
    procs = [h for h in map(holder, pids) if h]
    # a Unix socket's columns are path, inode, peer path, peer inode
    peer = parts[6] if parts[0].startswith("u_") and len(parts) > 6 else parts[5]
    rows.append([parts[0], parts[1], parts[4], peer, procs])
print(json.dumps(rows))
""".replace("RUN_ENV", RUN_ENV).replace("NOBODY", str(NOBODY))


@dataclass(frozen=True)
class Sock:
    proto: str  # tcp, udp, u_str, u_dgr...
    state: str
    local: str
    peer: str
    holders: tuple[tuple[int, bool, str], ...]  # (pid, marked by hoplab, command line)

    @property
    def learners(self) -> bool:
        """Every holder unmarked: a socket hoplab's program shares (or inherited) never counts."""
        return all(not marked for _, marked, _ in self.holders)

    @property
    def port(self) -> int:
        tail = self.local.rsplit(":", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    @property
    def address(self) -> str:
        """The local address without the port; * and [::] kept as ss prints them."""
        return self.local.rsplit(":", 1)[0].split("%")[0]

    @property
    def program(self) -> str:
        if not self.holders:
            return "no process (the kernel's alone)"
        pid, _, cmd = next((h for h in self.holders if not h[1]), self.holders[0])
        return f"{cmd.split()[0] if cmd else '?'} (pid {pid})"

    def describe(self) -> str:
        where = (
            self.local if self.state in ("LISTEN", "UNCONN") else f"{self.local} <-> {self.peer}"
        )
        return f"{self.proto} {self.state} {where} by {self.program}"


def all_sockets(node: Node, families: str = "-tu") -> list[Sock]:
    """Every socket in node (ss flags: -tu, -x, ...), held or not (TIME-WAIT ones never are)."""
    res = node.run(["python3", "-c", _READ, families], timeout=10)
    return [Sock(p, s, lo, pe, tuple(map(tuple, hs))) for p, s, lo, pe, hs in res.json()]


def learner_sockets(node: Node, families: str = "-tu") -> list[Sock]:
    """Sockets in node held by a process hoplab did not start."""
    return [s for s in all_sockets(node, families) if s.holders and s.learners]


def listeners(socks: list[Sock], proto: str) -> list[Sock]:
    """TCP sockets in LISTEN, or UDP sockets with no peer (UNCONN): servers."""
    state = "LISTEN" if proto == "tcp" else "UNCONN"
    return [s for s in socks if s.proto == proto and s.state == state]


def seen(socks: list[Sock]) -> str:
    return "; ".join(s.describe() for s in socks) or "none of your programs holds a socket"
