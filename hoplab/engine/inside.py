"""Running things inside a lab's nodes and moving files in and out, all through the API.

No bind mounts and no docker CLI, so a remote engine works the same as a local one.
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
