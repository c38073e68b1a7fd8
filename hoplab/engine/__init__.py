"""The engine: the only code that imports docker. All lab state lives in labels.

- `interface`: EngineAPI, the Protocol everything above the engine is typed against;
- `engine`: Engine, the Docker implementation (a thin facade over the modules below);
- `state`: LabState and NodeState, read back from labels (pure);
- `reconcile`: what `up` does with an existing lab, node labels, readiness (pure), and `apply`;
- `bringup`, `teardown`, `inside` (exec and files), `inventory` (list calls);
- `parallel` (bounded workers, rollback), `endpoints` (per-network locks, moby#42119);
- `reaping`: which labs a dead pytest run left behind (pure);
- `client`, `image`, `shell`, `egress`: the connection, the node image, a TTY, the host rules.
"""
