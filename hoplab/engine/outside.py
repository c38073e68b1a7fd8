"""Finding and killing a node's processes from outside the node, where its root cannot reach.

A participant is root in their nodes: every program an exec runs there (python3, kill, sh) can be
replaced or made to hang, and Docker cannot kill an exec. So when an exec overruns its deadline,
or a terminal's in-node clean-up does, the processes are found from the engine's host view
(`docker top`, which runs ps on the host: host pids, parents, sessions) and killed by a helper
container started fresh from the node image with the host's pid namespace: a file system the
participant never touched, running one fixed `kill`. It costs about a second, paid only when
something in the node hangs, and only by its own participant's lane in the portal.
"""

from __future__ import annotations

import contextlib

import docker
import docker.errors

from hoplab.engine.client import explain
from hoplab.engine.image import IMAGE
from hoplab.errors import HoplabError
from hoplab.model import labels as L

KILLER_WAIT = 20  # seconds the killer container may take, start to exit


def table(api: docker.APIClient, container: str) -> dict[int, tuple[int, int]]:
    """host pid -> (parent's host pid, session's host pid), for every process of the container."""
    try:
        rows = api.top(container, ps_args="-o pid,ppid,sid")["Processes"] or []
    except docker.errors.APIError as err:
        raise HoplabError(f"cannot list the processes of {container}: {explain(err)}") from None
    found = {}
    for row in rows:
        with contextlib.suppress(ValueError, IndexError):
            found[int(row[0])] = (int(row[1]), int(row[2]))
    return found


def tree(procs: dict[int, tuple[int, int]], roots: set[int]) -> set[int]:
    """The roots, every process descended from one, and every session one of them leads."""
    doomed = {p for p in roots if p in procs}
    while True:
        more = {p for p, (ppid, sid) in procs.items() if ppid in doomed or sid in doomed} - doomed
        if not more:
            return doomed
        doomed |= more


def kill(api: docker.APIClient, container: str, pids: set[int]) -> None:
    """SIGKILL host pids of the container from a fresh helper container (pid: host).

    Only pids that `docker top` lists for this container are signalled, so a stale or foreign
    pid is never touched. The helper carries the node's lab label, so `clean` finds it if this
    process dies before removing it.
    """
    mine = set(table(api, container)) & pids
    if not mine:
        return
    lab = (api.inspect_container(container)["Config"].get("Labels") or {}).get(L.LAB, "")
    try:
        helper = api.create_container(
            IMAGE,  # fresh from the image: nothing of the node's file system
            entrypoint=["kill", "-KILL", *map(str, sorted(mine))],
            labels={L.LAB: lab} if lab else {},
            host_config=api.create_host_config(
                pid_mode="host", network_mode="none", cap_drop=["ALL"], cap_add=["KILL"]
            ),
        )["Id"]
    except docker.errors.APIError as err:
        raise HoplabError(f"cannot start a killer for {container}: {explain(err)}") from None
    try:
        api.start(helper)
        api.wait(helper, timeout=KILLER_WAIT)
    except Exception as err:  # noqa: BLE001 - a timeout of the wait is a requests error
        raise HoplabError(f"the killer for {container} did not finish: {err}") from None
    finally:
        with contextlib.suppress(docker.errors.APIError):
            api.remove_container(helper, force=True)


def kill_tree(api: docker.APIClient, container: str, root: int) -> int:
    """Kill root (a host pid, e.g. an exec's) and everything below it; how many were killed."""
    doomed = tree(table(api, container), {root})
    if doomed:
        kill(api, container, doomed)
    return len(doomed)
