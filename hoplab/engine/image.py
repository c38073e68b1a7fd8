"""The node image `hoplab/node`: build it only when hosts/ changed, from a base we can get offline.

No container registry is reachable on the project's machine, so the base image comes from the
first source that works: a local `debian:bookworm-slim`, a pull of it, a local
`hoplab/base:bookworm`, or a bootstrap from Debian packages with mmdebstrap that is imported as
`hoplab/base:bookworm`.

The image carries a content hash of hosts/ as a label. Every lab bring-up calls `ensure_image`, so
the common case (nothing changed) costs one inspect call and no build.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from hoplab.errors import HoplabError
from hoplab.model import labels as L

IMAGE = "hoplab/node:latest"
HASH_LABEL = L.IMAGE_HASH
DEBIAN_REPO, DEBIAN_TAG = "debian", "bookworm-slim"
DEBIAN_IMAGE = f"{DEBIAN_REPO}:{DEBIAN_TAG}"
BASE_REPO, BASE_TAG = "hoplab/base", "bookworm"
BASE_IMAGE = f"{BASE_REPO}:{BASE_TAG}"

# Names that running the programs locally leaves behind. hosts/.dockerignore keeps them out of the
# build context; skipping them here too keeps a stray __pycache__ from forcing a rebuild.
_IGNORED_DIRS = frozenset({"__pycache__", ".pytest_cache"})
_IGNORED_SUFFIXES = (".pyc",)

# What an imported root file system lacks compared with debian:bookworm-slim: no image config.
_BASE_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    'CMD ["bash"]',
]

Say = Callable[[str], None]


def content_hash(hosts_dir: Path) -> str:
    """Hash every file under hosts_dir: relative path, exec bit and bytes, in sorted order.

    The exec bit is part of it because the entrypoint only works when it is executable. Each field
    is length-prefixed so that no two different trees can produce the same byte stream.
    """
    digest = hashlib.sha256()
    for rel, path in _walk(hosts_dir):
        st = path.lstat()
        if path.is_symlink():
            kind, data = b"L", os.readlink(path).encode()
        else:
            kind, data = (b"X" if st.st_mode & 0o111 else b"F"), path.read_bytes()
        name = rel.encode()
        digest.update(b"%d:%s%s%d:" % (len(name), name, kind, len(data)))
        digest.update(data)
    return "sha256:" + digest.hexdigest()


def _walk(root: Path) -> list[tuple[str, Path]]:
    """All files below root as (posix relative path, path), sorted, minus the ignored names."""
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _IGNORED_DIRS]
        for fname in filenames:
            if fname.endswith(_IGNORED_SUFFIXES):
                continue
            path = Path(dirpath, fname)
            found.append((path.relative_to(root).as_posix(), path))
    found.sort()
    return found


def ensure_image(
    client: docker.DockerClient, hosts_dir: Path, say: Say, *, tag: str = IMAGE
) -> str:
    """Return the id of hoplab/node:latest, building it first if hosts_dir changed since its build.

    Every bring-up calls this, so the hot path is one inspect call: if the image's hash label
    matches hosts_dir, nothing else runs. `tag` exists for tests, which build an edited hosts/
    without retagging the image that labs use.
    """
    hosts_dir = Path(hosts_dir)
    wanted = content_hash(hosts_dir)
    current = _inspect(client, tag)
    if current is not None and _labels(current).get(HASH_LABEL) == wanted:
        return str(current["Id"])

    say(f"{tag} is missing or out of date with {hosts_dir}: building it")
    base = _ensure_base(client, say)
    image_id = _build(client, hosts_dir, tag, base, wanted, say)
    if current is not None and current["Id"] != image_id:
        _remove_superseded(client, current["Id"])
    return image_id


def _inspect(client: docker.DockerClient, ref: str) -> dict[str, Any] | None:
    """The engine's inspect data for an image, or None when it is not there."""
    try:
        info: dict[str, Any] = client.api.inspect_image(ref)
        return info
    except docker.errors.ImageNotFound:
        return None


def _labels(info: dict[str, Any]) -> dict[str, str]:
    return (info.get("Config") or {}).get("Labels") or {}


def _ensure_base(client: docker.DockerClient, say: Say) -> str:
    """Pick the base in order of cost: local Debian, pulled Debian, earlier bootstrap, bootstrap."""
    if _inspect(client, DEBIAN_IMAGE) is not None:
        say(f"base image: {DEBIAN_IMAGE} (local)")
        return DEBIAN_IMAGE
    if _try_pull(client, say):
        say(f"base image: {DEBIAN_IMAGE} (pulled)")
        return DEBIAN_IMAGE
    if _inspect(client, BASE_IMAGE) is not None:
        say(f"base image: {BASE_IMAGE} (local, bootstrapped earlier)")
        return BASE_IMAGE
    _bootstrap_base(client, say)
    return BASE_IMAGE


def _try_pull(client: docker.DockerClient, say: Say) -> bool:
    """Try to pull debian:bookworm-slim; False on any failure: a missing registry is normal."""
    say(f"pulling {DEBIAN_IMAGE}...")
    started = time.monotonic()
    try:
        for chunk in client.api.pull(DEBIAN_REPO, tag=DEBIAN_TAG, stream=True, decode=True):
            if "error" in chunk:
                raise docker.errors.APIError(chunk["error"])
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        # APIError.explanation is the engine's own words, without the HTTP preamble.
        why = str(getattr(exc, "explanation", None) or exc).strip() or type(exc).__name__
        say(f"pull failed after {time.monotonic() - started:.1f} s: {why.splitlines()[0][:200]}")
        return False
    return _inspect(client, DEBIAN_IMAGE) is not None


def _bootstrap_base(client: docker.DockerClient, say: Say) -> None:
    """Build a minimal Debian root file system with mmdebstrap, import it as hoplab/base:bookworm.

    Goes through the API (import_image_from_file), never the docker CLI, so it works wherever
    docker-py reaches the engine. The tarball lives in a temporary directory that is always removed.
    """
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise HoplabError(
            f"no base image for {IMAGE}: {DEBIAN_IMAGE} cannot be pulled, {BASE_IMAGE} does not "
            "exist, and mmdebstrap is not installed to bootstrap one from Debian packages",
            hint=f"apt-get install mmdebstrap, or make a {DEBIAN_IMAGE} image available to the "
            "engine (for example with `docker load`)",
        )
    with tempfile.TemporaryDirectory(prefix="hoplab-base-") as tmp:
        tarball = Path(tmp, "base.tar")
        say("bootstrapping base image from Debian packages with mmdebstrap (about 30 s)...")
        started = time.monotonic()
        _run_mmdebstrap([mmdebstrap, "--variant=minbase", "bookworm", str(tarball)], say)
        size_mb = tarball.stat().st_size / 1e6
        say(f"bootstrap done in {time.monotonic() - started:.1f} s ({size_mb:.0f} MB)")

        say(f"importing it as {BASE_IMAGE}...")
        started = time.monotonic()
        try:
            result = client.api.import_image_from_file(
                str(tarball), repository=BASE_REPO, tag=BASE_TAG, changes=_BASE_CHANGES
            )
        except docker.errors.APIError as exc:
            raise HoplabError(f"importing {BASE_IMAGE} failed: {exc}") from exc
        if '"error"' in str(result) or _inspect(client, BASE_IMAGE) is None:
            raise HoplabError(f"importing {BASE_IMAGE} failed: {str(result).strip()[-500:]}")
        say(f"import done in {time.monotonic() - started:.1f} s")


def _run_mmdebstrap(argv: list[str], say: Say) -> None:
    """Run mmdebstrap, forwarding its one-line "I:"/"W:"/"E:" messages and skipping the rest."""
    tail: collections.deque[str] = collections.deque(maxlen=30)
    with subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            if not line:
                continue
            tail.append(line)
            if line.startswith(("I: ", "W: ", "E: ")):
                say(f"  mmdebstrap: {line[3:]}")
        code = proc.wait()
    if code != 0:
        raise HoplabError(
            f"mmdebstrap failed with exit code {code}:\n" + "\n".join(tail),
            hint="it needs root (or unprivileged user namespaces) and access to a Debian mirror",
        )


def _build(
    client: docker.DockerClient, hosts_dir: Path, tag: str, base: str, wanted: str, say: Say
) -> str:
    """Build hosts_dir as tag on base, labelled with its content hash."""
    started = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=20)
    try:
        stream = client.api.build(
            path=str(hosts_dir),
            tag=tag,
            buildargs={"BASE": base},
            labels={HASH_LABEL: wanted},
            rm=True,
            forcerm=True,
            decode=True,
        )
        _follow_build(stream, tag, tail, say)
    except docker.errors.APIError as exc:
        raise HoplabError(
            f"building {tag} failed: {exc}", hint=f"check {hosts_dir}/Dockerfile"
        ) from exc
    info = _inspect(client, tag)
    if info is None or _labels(info).get(HASH_LABEL) != wanted:
        raise HoplabError(f"building {tag} ended without the expected image:\n" + "\n".join(tail))
    say(f"built {tag} in {time.monotonic() - started:.1f} s")
    return str(info["Id"])


def _follow_build(
    stream: Iterable[dict[str, Any]], tag: str, tail: collections.deque[str], say: Say
) -> None:
    """Forward "Step N/M" lines; raise on the first error chunk with the build's last lines."""
    for chunk in stream:
        if "error" in chunk:
            raise HoplabError(
                f"building {tag} failed: {chunk['error'].strip()}\n" + "\n".join(tail),
                hint="apt-get inside the build needs Debian's mirror through the default bridge",
            )
        for line in str(chunk.get("stream", "")).splitlines():
            line = line.rstrip()
            if line:
                tail.append(line)
                if line.startswith("Step "):
                    say(f"  {line}")


def _remove_superseded(client: docker.DockerClient, image_id: str) -> None:
    """Drop the previous hoplab/node image so edits do not pile up dangling images.

    Best effort and never forced: if a running lab still uses it, the engine refuses and we keep it.
    """
    with contextlib.suppress(docker.errors.APIError):
        client.api.remove_image(image_id)
