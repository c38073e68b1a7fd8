"""The Engine: one object per command that brings labs up and down on the Docker Engine.

It is a thin facade over modules named after what they hold: `state` (LabState from labels),
`inventory` (list calls), `reconcile` (pure decisions), `bringup`, `teardown`, `inside` (exec and
files), `endpoints` (per-network serialization, moby#42119) and `parallel` (bounded workers and
rollback). Names imported from here before the split keep working.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import docker

from hoplab.engine import egress, egress6, health, inside, inventory
from hoplab.engine.bringup import (
    INHIBIT,
    MEM_LIMIT,
    MTU_OPT,
    NODE_CAPS,
    PIDS_LIMIT,
    READY_TIMEOUT,
    BringUp,
    Limits,
)
from hoplab.engine.endpoints import EndpointLocks
from hoplab.engine.parallel import parallel
from hoplab.engine.reconcile import FAILED, READY, apply, decide
from hoplab.engine.state import (
    LabState,
    NodeState,
    Progress,
    Taken,
    UpReport,
    json_state,
    no_progress,
)
from hoplab.engine.teardown import Teardown
from hoplab.model.plan import Plan

__all__ = [
    "FAILED",
    "INHIBIT",
    "MEM_LIMIT",
    "MTU_OPT",
    "NODE_CAPS",
    "PIDS_LIMIT",
    "READY",
    "READY_TIMEOUT",
    "Engine",
    "LabState",
    "NodeState",
    "Progress",
    "UpReport",
    "json_state",
]


class Engine:
    """The one object that talks to Docker. Hold one per command; it keeps no lab state itself."""

    def __init__(
        self,
        client: docker.DockerClient,
        workers: int = 16,
        mem_limit: str = MEM_LIMIT,
        pids_limit: int = PIDS_LIMIT,
    ) -> None:
        self.client = client
        self.api = client.api
        self.workers = workers
        self.mem_limit, self.pids_limit = mem_limit, pids_limit
        endpoints = EndpointLocks()  # shared: starts and removals of one network serialize
        self._bringup = BringUp(self.api, endpoints, workers, Limits(mem_limit, pids_limit))
        self._teardown = Teardown(self.api, endpoints, workers)

    # --- reading labs back -------------------------------------------------------------------

    def state(self, lab: str) -> LabState:
        return inventory.state(self.api, lab)

    def labs(self) -> list[LabState]:
        return inventory.labs(self.api)

    def labs_labelled(self, key: str, value: str) -> list[str]:
        return inventory.labs_labelled(self.api, key, value)

    def memory(self, lab: str) -> dict[str, int]:
        """Bytes each running node of the lab uses (cgroup usage minus inactive page cache)."""
        nodes = [n for n in self.state(lab).nodes if n.state == "running"]
        values = parallel(
            lambda c: inventory.memory_usage(self.api, c),
            [n.container for n in nodes],
            "memory",
            no_progress,
            self.workers,
        )
        return {n.name: v for n, v in zip(nodes, values, strict=True)}

    def survey(self, lab: str) -> tuple[LabState, Taken]:
        return inventory.survey(self.api, lab)

    # --- up and down -------------------------------------------------------------------------

    def up(
        self,
        plan: Plan,
        image: str,
        progress: Progress = no_progress,
        labels: dict[str, str] | None = None,
        current: LabState | None = None,
        cancel: threading.Event | None = None,
        heal: bool = True,
    ) -> UpReport:
        """Create the lab, or leave a matching one alone; on any failure leave zero objects.

        `labels` are extra labels for every node (an owner, the pid of a test run), so that
        whoever made a lab can find and reap it from the engine alone. `current` is the lab's
        state if the caller just read it, to save the round trips. Setting `cancel` stops nodes
        not yet created and rolls the lab back (Cancelled). `heal` probes a kept lab's nodes
        and restarts the broken ones (see heal); False is for a caller that just reset them.
        """
        egress.ensure(self.client, image)  # no lab starts, or stays up, open to the host
        if plan.six is not None:  # nor, with IPv6 on in its nodes, over IPv6
            egress6.ensure(self.client, image)
        current = current or self.state(plan.lab)
        return apply(
            decide(current, plan, image),
            heal=lambda: self.heal(plan, current, progress) if heal else {},
            start=lambda names: parallel(
                lambda n: self._bringup.start_node(plan.node(n), plan),
                names,
                "starting nodes",
                progress,
                self.workers,
            ),
            remove=lambda: self.down(plan.lab, progress),
            create=lambda: self._bringup.create(plan, image, progress, labels or {}, cancel),
        )

    def heal(self, plan: Plan, current: LabState, progress: Progress) -> dict[str, str]:
        """Probe every running node of a kept lab (one exec each) and restart the ones that are
        not as the plan made them; returns node -> what was wrong (see hoplab.engine.health)."""
        running = [n for n in current.nodes if n.state == "running"]
        found = parallel(
            lambda n: health.probe(self.api, n), running, "checking nodes", progress, self.workers
        )
        wrong = {n.name: why for n, why in zip(running, found, strict=True) if why}

        def repair(node: NodeState) -> None:
            networks = [plan.network(net).docker_name for net in node.addresses]
            with self._bringup.endpoints.holding(networks):  # a restart re-makes its endpoints
                health.restart(self.api, node)

        sick = [n for n in running if n.name in wrong]
        parallel(repair, sick, "repairing nodes", progress, self.workers)
        return wrong

    def down(self, lab: str | None, progress: Progress = no_progress) -> tuple[int, int]:
        """Remove one lab's objects (or every hoplab object) in parallel; never anything else."""
        return self._teardown.down(lab, progress)

    # --- running things in nodes -------------------------------------------------------------

    def container(self, lab: str, node: str) -> dict:
        return inside.container(self.api, lab, node)

    def exec_stream(
        self, container: str, cmd: list[str], write: Callable[[int, bytes], None]
    ) -> int:
        return inside.exec_stream(self.api, container, cmd, write)

    def run(self, container: str, cmd: list[str]) -> tuple[int, bytes, bytes]:
        return inside.run(self.api, container, cmd)

    def put_file(self, container: str, dest: str, data: bytes, mode: int = 0o755) -> None:
        inside.put_file(self.api, container, dest, data, mode)

    def get_file(self, container: str, path: str) -> bytes:
        return inside.get_file(self.api, container, path)
