"""The engine: the only code that imports docker. All lab state lives in labels.

- `connect_engine` (below): the one factory, which hands out an EngineAPI;
- `interface`: EngineAPI, the Protocol everything above the engine is typed against;
- `engine`: Engine, the Docker implementation (a thin facade over the modules below);
- `state`: LabState and NodeState, read back from labels (pure);
- `reconcile`: what `up` does with an existing lab, node labels, readiness (pure), and `apply`;
- `bringup`, `teardown`, `inside` (exec and files), `inventory` (list calls);
- `parallel` (bounded workers, rollback), `endpoints` (per-network locks, moby#42119);
- `reaping`: which labs a dead pytest run left behind (pure);
- `client`, `image`, `shell`, `egress`: the connection, the node image, a TTY, the host rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hoplab.engine.interface import EngineAPI


def connect_engine(client: object = None, *, workers: int = 16) -> EngineAPI:
    """The one way code above the engine gets an engine: on `client` (a docker.DockerClient the
    caller already holds, typed `object` since only hoplab.engine may name docker's types), else
    on the environment's (DOCKER_HOST...), which is pinged first and fails with a hint.

    Imported lazily: `import hoplab.engine.state` (the fast tier) must not load docker-py."""
    import docker

    from hoplab.engine.client import connect
    from hoplab.engine.engine import Engine

    if client is None:
        client = connect()
    if not isinstance(client, docker.DockerClient):
        raise TypeError(f"connect_engine needs a docker.DockerClient, not {type(client).__name__}")
    return Engine(client, workers=workers)
