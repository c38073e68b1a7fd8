"""The engines of a room: reaching each one by URL or Docker context, and what it can hold.

A room spreads over engines the way Docker itself reaches them: `unix://`, `tcp://` (TLS from
DOCKER_CERT_PATH and DOCKER_TLS_VERIFY, as the docker CLI does), `ssh://` through docker-py's
transport over the system's ssh (so ~/.ssh/config and agents work as for the docker CLI), or the
name of a Docker context (endpoint and TLS read from ~/.docker/contexts, or DOCKER_CONFIG's).
'local' is the engine of the environment (DOCKER_HOST, DOCKER_CONTEXT, the local socket).
Every engine is reached in parallel with a short timeout: one dead machine must cost the room
seconds, not minutes, and it is reported, never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import docker.tls
import docker.utils
import requests

from hoplab.engine import inventory
from hoplab.engine.client import API_VERSION, explain
from hoplab.engine.engine import Engine
from hoplab.engine.interface import EngineAPI
from hoplab.errors import HoplabError, InputError

LOCAL = "local"
SCHEMES = ("unix://", "tcp://", "ssh://", "http://", "https://", "npipe://")
REACH_TIMEOUT = 8  # seconds for the first ping; lab operations then get the usual long timeout
OP_TIMEOUT = 120


@dataclass(frozen=True)
class Size:
    """What an engine has and already holds: the inputs of the capacity rule (placement.py)."""

    cpus: int
    memory: int  # bytes
    labs: int  # hoplab labs already on it, of any room or none
    nodes: int  # hoplab containers already on it


@dataclass
class Reached:
    """One engine of the room: its name as given, and the engine or why it is out of reach."""

    name: str
    engine: EngineAPI | None = None
    error: str = ""
    size: Size | None = None

    @property
    def up(self) -> bool:
        return self.engine is not None


def client_for(name: str, timeout: int = OP_TIMEOUT) -> docker.DockerClient:
    """A client (not yet pinged) for a URL, a context name, or 'local'; InputError if unknown."""
    if name == LOCAL:
        return docker.DockerClient.from_env(version=API_VERSION, timeout=timeout)
    if name.startswith(SCHEMES):
        tls = None
        if name.startswith("tcp://"):  # the same TLS settings the docker CLI takes from env
            env = docker.utils.kwargs_from_env()
            tls = env.get("tls")
        return docker.DockerClient(
            base_url=name,
            version=API_VERSION,
            timeout=timeout,
            tls=tls or False,
            use_ssh_client=True,
        )
    found = context_endpoint(name)
    if found is not None:
        host, tls = found
        return docker.DockerClient(
            base_url=host,
            tls=tls or False,
            version=API_VERSION,
            timeout=timeout,
            use_ssh_client=True,
        )
    raise InputError(
        f"engine {name!r} is neither a URL nor a Docker context",
        key="--engine",
        hint="give ssh://user@host, tcp://host:2376, unix:///path/docker.sock, 'local', or "
        "the name of a context from `docker context ls`",
    )


def context_endpoint(name: str) -> tuple[str, docker.tls.TLSConfig | None] | None:
    """The docker endpoint of a Docker context, read from its meta file as the docker CLI does.

    Read here rather than through docker-py's ContextAPI: that falls back to the default engine
    for an unknown name (a typo would place labs on the wrong machine), and it misses contexts
    when DOCKER_CONFIG has no config.json.
    """
    config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    ident = hashlib.sha256(name.encode()).hexdigest()
    try:
        meta = json.loads((config / "contexts" / "meta" / ident / "meta.json").read_text())
        endpoint = meta["Endpoints"]["docker"]
        host = str(endpoint["Host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    certs = config / "contexts" / "tls" / ident / "docker"
    tls = None
    if certs.is_dir():
        pair = (str(certs / "cert.pem"), str(certs / "key.pem"))
        ca = certs / "ca.pem"
        tls = docker.tls.TLSConfig(
            client_cert=pair if (certs / "cert.pem").exists() else None,
            ca_cert=str(ca) if ca.exists() else None,
            verify=not endpoint.get("SkipTLSVerify", False),
        )
    return host, tls


def size(client: docker.DockerClient) -> Size:
    """CPUs and memory from `info`, and the hoplab labs and nodes it already runs (one list)."""
    info = client.api.info()
    held = inventory.labs(client.api)
    return Size(
        cpus=int(info.get("NCPU") or 1),
        memory=int(info.get("MemTotal") or 0),
        labs=len(held),
        nodes=sum(len(lab.nodes) for lab in held),
    )


def reach_one(name: str, measure: bool = True) -> Reached:
    """Ping with a short timeout, then hand back a client with the usual long one."""
    try:
        quick = client_for(name, timeout=REACH_TIMEOUT)
        quick.api.ping()
        found = size(quick) if measure else None
        quick.close()
        return Reached(name, Engine(client_for(name)), size=found)
    except (docker.errors.DockerException, requests.RequestException, OSError) as err:
        return Reached(name, error=explain(err).splitlines()[0][:200] or type(err).__name__)


def reach(names: list[str], measure: bool = True) -> list[Reached]:
    """Every engine at once, in the order given; names are checked before any is reached."""
    for name in names:
        if not name.startswith(SCHEMES) and name != LOCAL:
            client_for(name).close()  # raises InputError for a name that is no context
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(names)))) as workers:
        return list(workers.map(lambda n: reach_one(n, measure), names))


def require(reached: Reached) -> EngineAPI:
    if reached.engine is None:
        raise HoplabError(
            f"cannot reach the Docker Engine {reached.name}: {reached.error}",
            hint="start it, or check the URL, the ssh key or the context",
        )
    return reached.engine
