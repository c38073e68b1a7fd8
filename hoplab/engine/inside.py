"""Running things inside a lab's nodes and moving files in and out, all through the API.

No bind mounts and no docker CLI, so a remote engine works the same as a local one.

An own-image node has two containers on one network namespace: the node's own (the hoplab/node
sandbox that holds the namespace) and its program's. `exec_target` says which of them a call runs
in: the program's, where its files and processes are, unless its image lacks a tool the call
needs (tcpdump or `ss` in a FROM scratch image); then the sandbox, with a note that says so.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import tarfile
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import docker
import docker.errors

from hoplab.engine import outside
from hoplab.engine.client import explain
from hoplab.engine.inventory import state
from hoplab.engine.pods import app_of
from hoplab.errors import HoplabError, Overdue
from hoplab.model import labels as L


def container(api: docker.APIClient, lab: str, node: str) -> dict[str, Any]:
    """The node's container, refusing any container that is not this lab's."""
    found = api.containers(all=True, filters={"label": [f"{L.LAB}={lab}", f"{L.NODE}={node}"]})
    if not found:
        known = sorted(n.name for n in state(api, lab).nodes)
        raise HoplabError(
            f"lab {lab!r} has no node {node!r}",
            hint=f"nodes: {', '.join(known)}" if known else "bring the lab up: hoplab up",
        )
    first: dict[str, Any] = found[0]
    return first


# Docker's own PATH for an exec in a container whose image sets none (a FROM scratch image).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def program_container(api: docker.APIClient, container: str) -> str | None:
    """The running container of the node's own program, or None: a hoplab/node node has none,
    and a program that stopped has nowhere to exec. container: the node's own container."""
    try:
        info = api.inspect_container(app_of(container))
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as e:
        raise HoplabError(f"cannot inspect {app_of(container)}: {explain(e)}") from None
    return str(info["Name"]).lstrip("/") if info["State"].get("Running") else None


def missing_programs(api: docker.APIClient, container: str, programs: list[str]) -> list[str]:
    """Those of programs (paths, or names looked up in the container's PATH) that its image
    lacks. Asked of the engine's file API (HEAD of an archive path), not by an exec: an image
    may have no shell, no `which`, nothing to ask with."""
    try:
        env = api.inspect_container(container)["Config"].get("Env") or []
    except docker.errors.APIError as e:
        raise HoplabError(f"cannot inspect {container}: {explain(e)}") from None
    path = next((v[5:] for v in env if v.startswith("PATH=")), DEFAULT_PATH)
    dirs = [d for d in path.split(":") if d.startswith("/")]

    def exists(file: str) -> bool:
        # docker-py has no HEAD of an archive path: the same URL its get_archive uses.
        url = f"{api.base_url}/v{api.api_version}/containers/{container}/archive"
        return api.head(url, params={"path": file}).status_code == 200

    def found(program: str) -> bool:
        if "/" in program:
            return exists(program)
        return any(exists(f"{d.rstrip('/')}/{program}") for d in dirs)

    return [p for p in dict.fromkeys(programs) if not found(p)]


def exec_target(api: docker.APIClient, container: str, programs: list[str]) -> tuple[str, str]:
    """(where a call that needs programs runs, a note when that is not where the program lives).

    The node's program container when it has every one of programs; the node's own container
    (same network namespace, but neither the program's files nor its processes) when it lacks
    one; the node's own container, silently, for a node that runs no program of its own."""
    app = program_container(api, container)
    if app is None:
        return container, ""
    missing = missing_programs(api, app, programs)
    if not missing:
        return app, ""
    return container, (
        f"{', '.join(missing)} is not in the image of {app}: ran in the node's own container"
        f" {container} instead (same network namespace; the program's files and processes"
        " are not there)"
    )


def exec_stream(
    api: docker.APIClient, container: str, cmd: list[str], write: Callable[[int, bytes], None]
) -> int:
    """Run cmd in the node, passing output through as it comes; returns the exit code."""
    exec_id = api.exec_create(container, cmd, stdout=True, stderr=True)["Id"]
    for out, err in api.exec_start(exec_id, stream=True, demux=True):
        if out:
            write(1, out)
        if err:
            write(2, err)
    return int(api.exec_inspect(exec_id)["ExitCode"])


EXEC_DEADLINE = 300.0  # seconds an exec may take when its caller names no deadline
MAX_OUTPUT = 32 * 1024 * 1024  # bytes kept of each stream: a flood costs the node, not us
COOL_OFF = 60.0  # seconds a node that let an exec overrun gets no new exec (see Overdue)

# container -> monotonic time until which it gets no exec. A node whose root made one exec hang
# (a sitecustomize implant, a replaced tool) would make every later one hang too: a grading or a
# reap then fails at once instead of paying every exec's deadline in turn. Module state, because
# any Engine of this process may call into the same container.
_overdue: dict[str, float] = {}
_overdue_lock = threading.Lock()


def run(
    api: docker.APIClient, container: str, cmd: list[str], timeout: float = EXEC_DEADLINE
) -> tuple[int, bytes, bytes]:
    """Run cmd in the node and collect (exit code, stdout, stderr), never longer than timeout.

    docker-py would wait on the exec forever, so the output is read from the raw socket with a
    deadline. An exec that overruns is killed from the host's view (hoplab.engine.outside: the
    node's root cannot reach that) and raises Overdue, as does every exec into the same node for
    COOL_OFF seconds after.
    """
    _refuse_if_overdue(container, cmd)
    deadline = time.monotonic() + timeout
    try:
        exec_id = api.exec_create(container, cmd, stdout=True, stderr=True)["Id"]
        sock = api.exec_start(exec_id, socket=True)
    except docker.errors.APIError as e:
        raise HoplabError(f"cannot run {cmd[0]!r} in {container}: {explain(e)}") from None
    raw = cast(socket.socket, getattr(sock, "_sock", sock))  # a unix or TCP socket underneath
    try:
        got = _frames(raw, deadline)
    finally:
        raw.close()
        with contextlib.suppress(OSError):
            sock.close()
    code = _exit_code(api, exec_id, deadline) if got is not None else None
    if got is None or code is None:
        _give_up(api, container, exec_id, cmd, timeout)
    assert got is not None and code is not None
    return code, got[0], got[1]


def _refuse_if_overdue(container: str, cmd: list[str]) -> None:
    with _overdue_lock:
        left = _overdue.get(container, 0.0) - time.monotonic()
    if left > 0:
        raise Overdue(
            f"{container} did not answer an earlier exec in time, so {cmd[0]!r} was not run "
            f"(no exec for {left:.0f} s more)",
            hint="a program in the node hangs (changed by its root?): reset the lab",
        )


def _frames(raw: socket.socket, deadline: float) -> tuple[bytes, bytes] | None:
    """stdout and stderr of a non-TTY exec's multiplexed stream, or None at the deadline.

    Each frame is an 8-byte header (stream, 3 zero bytes, big-endian size) and its payload.
    """
    buf, out = bytearray(), {1: bytearray(), 2: bytearray()}
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        raw.settimeout(left)
        try:
            chunk = raw.recv(65536)
        except TimeoutError:
            return None
        if not chunk:
            return bytes(out[1]), bytes(out[2])
        buf += chunk
        while len(buf) >= 8 and len(buf) >= 8 + int.from_bytes(buf[4:8], "big"):
            size = int.from_bytes(buf[4:8], "big")
            target = out[2] if buf[0] == 2 else out[1]
            target += buf[8 : 8 + min(size, max(0, MAX_OUTPUT - len(target)))]
            del buf[: 8 + size]


def _exit_code(api: docker.APIClient, exec_id: str, deadline: float) -> int | None:
    """The stream can end a moment before the engine records the exit code; None if the
    process is still running at the deadline (it closed its output and went on)."""
    while True:
        info = api.exec_inspect(exec_id)
        if not info.get("Running"):
            return int(info.get("ExitCode") or 0)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def _give_up(
    api: docker.APIClient, container: str, exec_id: str, cmd: list[str], timeout: float
) -> None:
    with _overdue_lock:
        _overdue[container] = time.monotonic() + COOL_OFF
    killed = "and its processes were killed"
    try:
        pid = int(api.exec_inspect(exec_id).get("Pid") or 0)
        if pid:
            outside.kill_tree(api, container, pid)
    except (HoplabError, docker.errors.APIError) as err:
        killed = f"and could not be killed ({err})"
    raise Overdue(
        f"{cmd[0]!r} did not finish within {timeout:g} s in {container} {killed}",
        hint="a program in the node hangs (changed by its root?): reset the lab",
    )


def put_file(
    api: docker.APIClient, container: str, dest: str, data: bytes, mode: int = 0o755
) -> None:
    """Copy bytes into the node as a one-file tar archive."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(os.path.basename(dest))
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    try:
        api.put_archive(container, os.path.dirname(dest) or "/", buf.getvalue())
    except docker.errors.APIError as e:
        raise HoplabError(f"cannot copy into {container}:{dest}: {explain(e)}") from None


def get_file(api: docker.APIClient, container: str, path: str) -> bytes:
    """Fetch one file out of the node."""
    try:
        stream, _ = api.get_archive(container, path)
    except docker.errors.APIError as e:
        raise HoplabError(f"cannot fetch {container}:{path}: {explain(e)}") from None
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.next()
        f = tar.extractfile(member) if member else None
        return f.read() if f else b""
