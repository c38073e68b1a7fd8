"""The users' own images: found on the engine, or built from a context, before anything is created.

No registry is reachable, so `image:` must already be on the engine (hoplab never pulls). `build:`
contexts are built through docker-py and cached like hoplab/node: the image carries a hash of its
context (and of the hoplab/node image a `FROM hoplab/node` may build on) as a label, and an image
whose label matches is used as it is. Both failures are input errors that name the file, the line
and the key, raised before the first network exists, so a bad image creates nothing.
"""

from __future__ import annotations

import collections
import hashlib
import time
from pathlib import Path

import docker
import docker.errors

from hoplab.engine.client import explain
from hoplab.engine.image import Say, _follow_build, _inspect, _labels, content_hash
from hoplab.errors import HoplabError, InputError
from hoplab.model import labels as L
from hoplab.model.images import App
from hoplab.model.topology import Topology

APP_REPO = "hoplab/app"
NODE_REPO = "hoplab/node"  # built images are tagged hoplab/app:<content hash>


def ensure_app_images(
    client: docker.DockerClient, topo: Topology, node_image: str, say: Say
) -> dict[str, str]:
    """node name -> image id for every own-image node; one build per distinct context."""
    out: dict[str, str] = {}
    built: dict[tuple[str, str], str] = {}
    for node in topo.nodes:
        app = node.app
        if app is None:
            continue
        if app.build is None:
            out[node.name] = _local(client, topo.source, node.name, app)
            continue
        key = (app.build.context, app.build.dockerfile)
        if key not in built:
            built[key] = build_app(client, topo.source, node.name, app, node_image, say)
        out[node.name] = built[key]
    return out


def _local(client: docker.DockerClient, source: str, node: str, app: App) -> str:
    info = _inspect(client, app.image)
    if info is None:
        raise InputError(
            f"image {app.image!r} is not on the engine",
            file=source,
            line=app.line,
            key=f"services.{node}.image",
            hint="no registry is reachable and hoplab never pulls: build it (docker build, or a "
            "build: key here) or load it (docker load) first",
        )
    return str(info["Id"])


def app_hash(context: Path, dockerfile: str, node_image: str) -> str:
    """What a built image depends on: its context's files, which Dockerfile, and hoplab/node."""
    digest = hashlib.sha256()
    for part in (content_hash(context), dockerfile, node_image):
        digest.update(f"{len(part)}:{part}".encode())
    return "sha256:" + digest.hexdigest()


def build_app(
    client: docker.DockerClient, source: str, node: str, app: App, node_image: str, say: Say
) -> str:
    """The image of a build: context, from the cache when its hash label matches."""
    assert app.build is not None
    context = Path(app.build.context)
    wanted = app_hash(context, app.build.dockerfile, node_image)
    tag = f"{APP_REPO}:{wanted.removeprefix('sha256:')[:20]}"
    current = _inspect(client, tag)
    if current is not None and _labels(current).get(L.IMAGE_HASH) == wanted:
        _tag_as(client, current["Id"], app.image)
        return str(current["Id"])
    say(f"building {node}'s image from {context} ({app.build.dockerfile})")
    # A `FROM hoplab/node` reads the tag as the build starts: point it at the node image this
    # lab runs, which the hash above names (another checkout on this engine may have moved it).
    client.api.tag(node_image, NODE_REPO, "latest")
    started = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=20)
    key = f"services.{node}.build"
    try:
        stream = client.api.build(
            path=str(context),
            dockerfile=app.build.dockerfile,
            tag=tag,
            labels={L.IMAGE_HASH: wanted},
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        _follow_build(stream, tag, tail, say)
    except HoplabError as err:
        raise InputError(
            f"building the image failed: {err.message.splitlines()[0]}",
            file=source,
            line=app.build.line,
            key=key,
            hint="the build's last lines:\n    " + "\n    ".join(tail),
        ) from None
    except docker.errors.APIError as err:
        raise InputError(
            f"building the image failed: {explain(err)}",
            file=source,
            line=app.build.line,
            key=key,
            hint=f"check {context / app.build.dockerfile}",
        ) from None
    info = _inspect(client, tag)
    if info is None or _labels(info).get(L.IMAGE_HASH) != wanted:
        raise InputError(
            "the build ended without an image", file=source, line=app.build.line, key=key
        )
    say(f"built {node}'s image in {time.monotonic() - started:.1f} s")
    _tag_as(client, info["Id"], app.image)
    return str(info["Id"])


def _tag_as(client: docker.DockerClient, image_id: str, name: str) -> None:
    """`image:` beside `build:` names the result, as Compose does."""
    if name:
        repo, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "")
        client.api.tag(image_id, repo, tag or "latest")
