"""The programs running in a node, read by the engine from the host side (`docker top`).

No exec: `top` runs ps on the engine's host and keeps the container's processes, about 20 ms a
node against 55 ms or more for an exec, and it sees what a program inside could hide from
another program inside (the environment of nobody's processes, closed to root in the node).
"""

from __future__ import annotations

import re

import docker
import docker.errors
from hoplab.engine.client import explain
from hoplab.errors import HoplabError


def processes(api: docker.APIClient, container: str, mark: str) -> list[tuple[int, int, str, str]]:
    """(pid on the host, uid, value of the environment variable `mark` or '', command line).

    ps prints the environment after the arguments (`e`) with no separator, so the mark is found
    by its key and the command line comes from a second, plain listing.
    """
    try:
        plain = api.top(container, ps_args="-o pid,uid,args -ww")["Processes"] or []
        env = api.top(container, ps_args="-o pid,args e -ww")["Processes"] or []
    except docker.errors.APIError as err:
        raise HoplabError(f"cannot list the processes of {container}: {explain(err)}") from None
    key = re.compile(rf"(?:^|\s){re.escape(mark)}=(\S+)")
    marks = {}
    for pid, line in env:
        found = key.findall(line)
        marks[int(pid)] = found[-1] if found else ""
    return [(int(pid), int(uid), marks.get(int(pid), ""), cmd) for pid, uid, cmd in plain]
