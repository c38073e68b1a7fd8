"""The programs running in a node, read by the engine from the host side (`docker top`).

No exec: `top` runs ps on the engine's host and keeps the container's processes, about 20 ms a
node against 55 ms or more for an exec, and it sees what a program inside could hide from
another program inside (the environment of nobody's processes, closed to root in the node).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import docker
import docker.errors

from hoplab.engine.client import explain
from hoplab.errors import HoplabError


def processes(api: docker.APIClient, container: str, mark: str) -> list[tuple[int, int, str, str]]:
    """(pid on the host, uid, value of the environment variable `mark` or '', command line).

    ps prints the environment after the arguments (`e`) with no separator, so the mark is found
    by its key and the command line comes from a second, plain listing.
    """
    for attempt in range(5):
        try:
            plain = api.top(container, ps_args="-o pid,uid,args -ww")["Processes"] or []
            env = api.top(container, ps_args="-o pid,args e -ww")["Processes"] or []
            break
        except docker.errors.APIError as err:
            # ps fails now and then when a process ends while it reads it (a respawner)
            if attempt == 4:
                msg = f"cannot list the processes of {container}: {explain(err)}"
                raise HoplabError(msg) from None
            time.sleep(0.05)
    key = re.compile(rf"(?:^|\s){re.escape(mark)}=(\S+)")
    marks = {}
    for pid, line in env:
        found = key.findall(line)
        marks[int(pid)] = found[-1] if found else ""
    return [(int(pid), int(uid), marks.get(int(pid), ""), cmd) for pid, uid, cmd in plain]


def restart(
    api: docker.APIClient,
    container: str,
    ready: bytes,
    timeout: float = 60.0,
    rewire: Callable[[str], None] | None = None,
) -> None:
    """Restart a node whose processes cannot be reached any more, and wait for its entrypoint.

    The last resort of a reap: when a node's pids limit is full, no exec can start in it (not
    even the one that would kill the culprits), but a restart ends every process at once. The
    entrypoint puts the routes back and prints `ready` again; only lines logged after the
    restart count.
    """
    since = time.time()
    try:
        api.restart(container, timeout=0)
    except docker.errors.APIError as err:
        raise HoplabError(f"cannot restart {container}: {explain(err)}") from None
    if rewire is not None:  # a fabric-wired node restarts with no interface: wire it again
        rewire(container)
    # Polled, not followed: a followed log stream waits for a line with no deadline, and root in
    # the node can change the entrypoint so that none ever comes.
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen = api.logs(container, stream=False, since=since) or b""
        except docker.errors.APIError as err:
            raise HoplabError(f"cannot read the log of {container}: {explain(err)}") from None
        if ready in seen:
            return
        time.sleep(0.1)
    raise HoplabError(f"{container} did not come back after a restart: {seen[-500:]!r}")
