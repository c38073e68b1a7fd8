"""Running things inside a lab's nodes and moving files in and out, all through the API.

No bind mounts and no docker CLI, so a remote engine works the same as a local one.

An own-image node has two containers on one network namespace: the node's own (the hoplab/node
sandbox that holds the namespace) and its program's. `exec_target` says which of them a call runs
in: the program's, where its files and processes are, unless its image lacks a tool the call
needs (tcpdump or `ss` in a FROM scratch image); then the sandbox, with a note that says so.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Callable
from typing import Any

import docker
import docker.errors

from hoplab.engine.client import explain
from hoplab.engine.inventory import state
from hoplab.engine.pods import app_of
from hoplab.errors import HoplabError
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


def run(api: docker.APIClient, container: str, cmd: list[str]) -> tuple[int, bytes, bytes]:
    """Run cmd in the node and collect (exit code, stdout, stderr)."""
    try:
        exec_id = api.exec_create(container, cmd, stdout=True, stderr=True)["Id"]
        out, err = api.exec_start(exec_id, demux=True)
        code = int(api.exec_inspect(exec_id)["ExitCode"])
    except docker.errors.APIError as e:
        raise HoplabError(f"cannot run {cmd[0]!r} in {container}: {explain(e)}") from None
    return code, out or b"", err or b""


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
