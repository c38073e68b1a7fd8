"""Listening sockets in a lab that hoplab did not start: a learner's server left running.

A learner who keeps a server on srv:80 (typed in `hoplab shell`, or `hoplab exec`) holds a
port that an exercise needs; the exercise cannot run, and that is the environment's doing, not
a failure of what the exercise shows. hoplab marks every process it starts (RUN_ENV in
hoplab.runtime.lab), so a socket held only by unmarked processes is foreign. Participant code
(run as nobody) and strays of dead runs are not foreign: `reap` ends them before each exercise.

A socket that no process in the node holds is left out: Docker's embedded DNS listens on
127.0.0.11 in every node's namespace (`ss` shows it) from dockerd outside the node, and an
own-image node's program lives in a container of its own. Neither is the learner's leftover.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hoplab.errors import HoplabError
from hoplab.runtime.lab import NOBODY, RUN_ENV

if TYPE_CHECKING:
    from hoplab.engine.interface import EngineAPI
    from hoplab.engine.state import LabState

# Runs in the node as root (python3 -c), through the engine: an unmarked exec, so the scanner
# never counts as hoplab's own listener. Prints one JSON line per (socket, holder process).
_LISTENERS = r"""
import json, os, socket
def addr(hexaddr):
    ip, port = hexaddr.split(":")
    raw = bytes.fromhex(ip)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1]), int(port, 16)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, raw), int(port, 16)
sockets = {}
for proto, state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
    try:
        lines = open("/proc/net/" + proto).read().splitlines()[1:]
    except OSError:
        continue
    for line in lines:
        f = line.split()
        if f[3] == state and f[9] != "0":
            ip, port = addr(f[1])
            if port:
                sockets["socket:[%s]" % f[9]] = (proto.rstrip("6"), ip, port)
def read(pid, name):  # nobody's environ is closed to root without SYS_PTRACE: empty then
    try:
        with open("/proc/%s/%s" % (pid, name), "rb") as f:
            return f.read()
    except PermissionError:
        return b""
for pid in set(filter(str.isdigit, os.listdir("/proc"))) - {str(os.getpid())}:
    try:
        fds = os.listdir("/proc/%s/fd" % pid)
        held = {os.readlink("/proc/%s/fd/%s" % (pid, fd)) for fd in fds} & sockets.keys()
        uid = os.stat("/proc/" + pid).st_uid
        cmd = read(pid, "cmdline").replace(b"\0", b" ").decode(errors="replace").strip()
        env = read(pid, "environ").split(b"\0")
    except OSError:
        continue
    run = next((e[len(b"RUN_ENV="):].decode() for e in env if e.startswith(b"RUN_ENV=")), "")
    for inode in held:
        proto, ip, port = sockets[inode]
        print(json.dumps({"inode": inode, "proto": proto, "ip": ip, "port": port,
                          "pid": int(pid), "uid": uid, "run": run, "cmd": cmd[:200]}))
""".replace("RUN_ENV", RUN_ENV)


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket or bound UDP socket of a node, and the process that holds it
    (pid as the node sees it, so `hoplab exec NODE kill PID` reaches it)."""

    node: str
    proto: str
    ip: str
    port: int
    pid: int
    cmd: str
    user: str

    @property
    def endpoint(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"

    def describe(self) -> str:
        return f"{self.node} {self.proto} {self.endpoint}: {self.cmd} (pid {self.pid}, {self.user})"

    def fix(self, lab: str) -> str:
        return f"hoplab exec --name {lab} {self.node} kill {self.pid}"


def _foreign(node: str, rows: Iterable[dict]) -> list[Listener]:
    """Sockets whose holders are all unmarked and not nobody; one Listener per socket."""
    by_socket: dict[str, list[dict]] = {}
    for row in rows:
        by_socket.setdefault(row["inode"], []).append(row)
    found = []
    for holders in by_socket.values():
        if any(h["run"] or h["uid"] == NOBODY for h in holders):
            continue
        h = min(holders, key=lambda h: h["pid"])  # the parent of a forked server
        user = "root" if h["uid"] == 0 else str(h["uid"])
        found.append(Listener(node, h["proto"], h["ip"], h["port"], h["pid"], h["cmd"], user))
    return sorted(found, key=lambda f: (f.node, f.port, f.proto, f.ip))


def _node_listeners(engine: EngineAPI, container: str, node: str) -> list[Listener]:
    code, out, err = engine.run(container, ["python3", "-c", _LISTENERS])
    if code != 0:
        raise HoplabError(f"cannot read the sockets of {node}: {err.decode(errors='replace')}")
    rows = []
    for line in out.decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            rows.append(json.loads(line))
    return _foreign(node, rows)


def foreign_listeners(engine: EngineAPI, state: LabState) -> list[Listener]:
    """Listeners in the lab's running nodes that no hoplab process holds: one exec per node,
    in parallel (1.1 s for the default lab on a machine at load 19, where seven bare execs took
    0.64 s). Nothing is changed."""
    nodes = [n for n in state.nodes if n.state == "running"]
    if not nodes:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(nodes))) as workers:
        found = workers.map(lambda n: _node_listeners(engine, n.container, n.name), nodes)
        return [listener for per_node in found for listener in per_node]


def _mentions(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(word)}(?![\w.])", text) is not None


def blamed(
    listeners: Iterable[Listener], text: str, addresses: dict[str, list[str]]
) -> list[Listener]:
    """The foreign listeners a failure's text points at: it names the listener's port and its
    node (by name or by one of its addresses). addresses: node -> its IPv4 and IPv6 addresses."""
    return [
        f
        for f in listeners
        if _mentions(text, str(f.port))
        and any(_mentions(text, w) for w in [f.node, *addresses.get(f.node, [])])
    ]
