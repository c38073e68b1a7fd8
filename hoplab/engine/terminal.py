"""Browser terminals' Docker calls: a TTY exec with a raw socket, its resize, and its end.

The portal never holds a docker object itself: it gets a plain socket and an exec id from here.
Docker cannot kill an exec, so a terminal is ended by killing, inside the node, the session the
exec's shell leads and every process descended from it. exec_inspect's pid is the host's pid (the
engine may be remote, and the node has its own pid namespace), so the shell is found in the node
by a marker in its environment, HOPLAB_TERMINAL=<terminal id>, which its children inherit.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import cast

import docker
import docker.errors

from hoplab.engine.client import explain
from hoplab.errors import HoplabError

MARKER = "HOPLAB_TERMINAL"

# Runs in the node as root: SIGKILL every process that carries the marker, the sessions they lead
# and every descendant (a `setsid` child leaves the session, an `env -i` child drops the marker,
# neither leaves the tree). Python is in every node (the exercises run on it).
_KILL_TREE = r"""
import os, sys
mark = b"\0" + ("%s=%s" % (sys.argv[1], sys.argv[2])).encode() + b"\0"
me = os.getpid()
procs, roots = {}, set()
for p in os.listdir("/proc"):
    if p.isdigit() and int(p) not in (1, me):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            procs[int(p)] = (int(fields[1]), int(fields[3]))  # ppid, session
            with open(f"/proc/{p}/environ", "rb") as f:
                if mark in b"\0" + f.read() + b"\0":
                    roots.add(int(p))
        except (OSError, IndexError, ValueError):
            pass
doomed = roots | {p for p, (_, sid) in procs.items() if sid in roots}
grew = True
while grew:
    more = {p for p, (ppid, _) in procs.items() if ppid in doomed} - doomed
    grew = bool(more)
    doomed |= more
for p in doomed:
    try:
        os.kill(p, 9)
    except OSError:
        pass
print(len(doomed))
"""


def open_tty(
    api: docker.APIClient, container: str, cmd: list[str], env: dict[str, str]
) -> tuple[str, socket.socket, int]:
    """Start cmd on a TTY in the container: (exec id, its raw socket, the shell's pid)."""
    try:
        exec_id = api.exec_create(container, cmd, stdin=True, tty=True, environment=env)["Id"]
        sock = api.exec_start(exec_id, tty=True, socket=True)
    except docker.errors.APIError as err:
        raise HoplabError(f"cannot open a terminal in {container}: {explain(err)}") from None
    raw = cast(socket.socket, getattr(sock, "_sock", sock))  # the unbuffered socket inside
    pid = 0
    deadline = time.monotonic() + 5
    while not pid and time.monotonic() < deadline:  # the pid appears once the exec has started
        info = api.exec_inspect(exec_id)
        pid = int(info.get("Pid") or 0)
        if not pid and not info.get("Running") and info.get("ExitCode") is not None:
            break
        if not pid:
            time.sleep(0.02)
    return exec_id, raw, pid


def resize(api: docker.APIClient, exec_id: str, rows: int, cols: int) -> None:
    with contextlib.suppress(docker.errors.APIError):
        api.exec_resize(exec_id, height=rows, width=cols)


def running(api: docker.APIClient, exec_id: str) -> bool:
    try:
        return bool(api.exec_inspect(exec_id).get("Running"))
    except docker.errors.APIError:
        return False


def kill_tree(api: docker.APIClient, container: str, terminal: str) -> int:
    """Kill what the terminal started (see MARKER); how many processes were signalled."""
    try:
        cmd = ["python3", "-c", _KILL_TREE, MARKER, terminal]
        exec_id = api.exec_create(container, cmd)["Id"]
        out = api.exec_start(exec_id)
    except docker.errors.APIError:
        return 0  # the container is gone: so is everything the terminal started
    try:
        return int(out.strip() or 0)
    except ValueError:
        return 0
