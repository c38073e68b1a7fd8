"""Browser terminals' Docker calls: a TTY exec with a raw socket, its resize, and its end.

The portal never holds a docker object itself: it gets a plain socket and an exec id from here.
Docker cannot kill an exec, so a terminal is ended by killing, inside the node, the session the
exec's shell leads and every process descended from it. exec_inspect's pid is the host's pid (the
engine may be remote, and the node has its own pid namespace), so the shell is found in the node
by a marker in its environment, HOPLAB_TERMINAL=<terminal id>, which its children inherit.

The shell runs under a keeper (kept()) that is its children's subreaper: a process that leaves
the session (`setsid -f`), drops the marker (`env -i`) or double-forks is re-parented to the
keeper, not to the node's init, so it is still below the terminal when it closes. Root in the
node can still kill the keeper first, or make the in-node clean-up hang: then the clean-up runs
from the host's view of the keeper's tree (hoplab.engine.outside), and a reset remains the one
clean-up that nothing in the node can escape.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import cast

import docker
import docker.errors

from hoplab.engine import inside, outside
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


# The terminal's pid 1 in its exec: becomes a child subreaper (prctl 36), starts the shell, reaps
# orphans until the shell ends, and then, or on SIGHUP/SIGTERM (the page closed the terminal),
# kills everything still below it. SIG_IGN survives exec, so the shell is forked before ignoring.
_KEEPER = r"""
import ctypes, os, signal, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)
shell = os.fork()
if shell == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
def below():
    me, parent = os.getpid(), {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % p) as f:
                parent[int(p)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            pass
    doomed, grew = {me}, True
    while grew:
        more = {p for p, pp in parent.items() if pp in doomed} - doomed
        grew, doomed = bool(more), doomed | more
    return doomed - {me}
def end(*_):
    for _ in range(100):
        left = below()
        if not left:
            break
        for p in left:
            try:
                os.kill(p, 9)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
        time.sleep(0.02)
    os._exit(0)
for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP):
    signal.signal(sig, signal.SIG_IGN)
signal.signal(signal.SIGHUP, end)
signal.signal(signal.SIGTERM, end)
while True:
    try:
        if os.wait()[0] == shell:
            break
    except ChildProcessError:
        break
end()
"""
KILL_DEADLINE = 5.0  # seconds the in-node clean-up may take (it needs about 0.1)


def kept(shell: list[str]) -> list[str]:
    """The command that runs shell under the terminal's keeper (see _KEEPER)."""
    return ["python3", "-c", _KEEPER, *shell]


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


def kill_tree(api: docker.APIClient, container: str, terminal: str, pid: int = 0) -> int:
    """Kill what the terminal started (see MARKER); how many processes were signalled.

    In the node first (fast, by marker, sessions and descendants). If that overruns its deadline
    or answers nonsense, root has tampered with the node: then the keeper's tree is killed from
    the host's view by the keeper's host pid (pid, from exec_inspect when it opened).
    """
    try:
        cmd = ["python3", "-c", _KILL_TREE, MARKER, terminal]
        code, out, _ = inside.run(api, container, cmd, KILL_DEADLINE)
        if code == 0:
            return int(out.strip() or 0)
    except (HoplabError, ValueError):
        pass
    if not pid:
        return 0
    try:
        return outside.kill_tree(api, container, pid)
    except HoplabError:
        return 0  # the container is gone: so is everything the terminal started
