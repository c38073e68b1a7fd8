"""The Engine: one object per command that brings labs up and down on the Docker Engine.

It is a thin facade over modules named after what they hold: `state` (LabState from labels),
`inventory` (list calls), `reconcile` (pure decisions), `bringup`, `teardown`, `inside` (exec and
files), `endpoints` (per-network serialization, moby#42119) and `parallel` (bounded workers and
rollback). Names imported from here before the split keep working.

Code above the engine never constructs it: it calls `hoplab.engine.connect_engine`, which hands
back an EngineAPI. `client` and `api` stay public for tests and benches, which look at Docker
directly; they are not part of EngineAPI.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

from hoplab.engine import (
    build,
    egress,
    egress6,
    fabric,
    health,
    impair,
    inside,
    inventory,
    pods,
    programs,
    rooms,
    shell,
    wiretap,
)
from hoplab.engine import terminal as tty
from hoplab.engine.bringup import (
    INHIBIT,
    MEM_LIMIT,
    NODE_CAPS,
    PIDS_LIMIT,
    READY_TIMEOUT,
    BringUp,
    Limits,
)
from hoplab.engine.endpoints import EndpointLocks
from hoplab.engine.image import ensure_image as ensure_node_image
from hoplab.engine.interface import Say
from hoplab.engine.parallel import parallel
from hoplab.engine.reconcile import FAILED, READY, apply, decide
from hoplab.engine.state import (
    MTU_OPT,
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
from hoplab.model.topology import Topology

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


class Engine(impair.LinkImpairments):
    """The one object that talks to Docker. Hold one per command; it keeps no lab state itself.

    Its impairment methods (apply_impairments, change_impairment, impairments) come from
    impair.LinkImpairments, on top of `run`."""

    def __init__(
        self,
        client: docker.DockerClient,
        workers: int = 16,
        mem_limit: str = MEM_LIMIT,
        pids_limit: int = PIDS_LIMIT,
        wiring: str | None = None,
    ) -> None:
        self.client = client
        self.api = client.api
        self.workers = workers
        self.mem_limit, self.pids_limit = mem_limit, pids_limit
        # How new labs are wired: Docker's networks, or hoplab's own fabric (engine/fabric.py).
        # None: HOPLAB_WIRING, read once here, so one engine object never mixes the two.
        self.wiring = fabric.wiring_from_env(
            wiring if wiring is not None else os.environ.get(fabric.WIRING_ENV)
        )
        endpoints = EndpointLocks()  # shared: starts and removals of one network serialize
        self._bringup = BringUp(
            self.api, endpoints, workers, Limits(mem_limit, pids_limit), self.wiring
        )
        self._teardown = Teardown(self.api, endpoints, workers)

    # --- reading labs back -------------------------------------------------------------------

    def state(self, lab: str) -> LabState:
        return inventory.state(self.api, lab)

    def labs(self) -> list[LabState]:
        return inventory.labs(self.api)

    def labs_labelled(self, key: str, value: str) -> list[str]:
        return inventory.labs_labelled(self.api, key, value)

    def owners(self, room: str) -> dict[str, str]:
        return rooms.owners(self.api, room)

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
        if self.wiring == fabric.FABRIC:  # each lab is a world of its own: no subnet is taken
            return inventory.state(self.api, lab), Taken()
        return inventory.survey(self.api, lab)

    @functools.cached_property
    def wiring_refusal(self) -> str:
        """Why this engine cannot run the fabric's helper ('' if it can): `docker info` is read
        once per engine object, not on every `up` (a room brings up many labs on one engine)."""
        return fabric.refusal(self.api.info())

    def machine(self) -> tuple[int, int]:
        info = self.api.info()
        return int(info.get("NCPU") or 1), int(info.get("MemTotal") or 0)

    # --- images --------------------------------------------------------------------------------

    def ensure_image(self, hosts_dir: Path, say: Say) -> str:
        return ensure_node_image(self.client, hosts_dir, say)

    def ensure_app_images(self, topo: Topology, node_image: str, say: Say) -> dict[str, str]:
        return build.ensure_app_images(self.client, topo, node_image, say)

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
        wired = self.wiring == fabric.FABRIC
        if wired:  # no host bridge, so no host rule; but the engine must allow the helper
            why = self.wiring_refusal
            if why:
                raise fabric.refused(why)
        else:
            egress.ensure(self.client, image)  # no lab starts, or stays up, open to the host
            if plan.six is not None:  # nor, with IPv6 on in its nodes, over IPv6
                egress6.ensure(self.client, image)
        current = current or self.state(plan.lab)
        return apply(
            decide(current, plan, image, wired),
            heal=lambda: self.heal(plan, current, progress) if heal else {},
            start=lambda names: self._bringup.restart_nodes(plan, names, progress),
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
                health.restart(self.api, node, rewire=lambda c: fabric.rewire(self.api, [c]))

        sick = [n for n in running if n.name in wrong]
        parallel(repair, sick, "repairing nodes", progress, self.workers)
        return wrong

    def down(self, lab: str | None, progress: Progress = no_progress) -> tuple[int, int]:
        """Remove one lab's objects (or every hoplab object) in parallel; never anything else."""
        return self._teardown.down(lab, progress)

    def remove_host_rules(self, image: str) -> None:
        egress.remove(self.client, image)
        egress6.remove(self.client, image)

    # --- link impairments ----------------------------------------------------------------------

    def netem_missing(self, image: str) -> str:
        return impair.netem_missing(self.client, image)

    # --- running things in nodes -------------------------------------------------------------

    def container(self, lab: str, node: str) -> dict[str, Any]:
        return inside.container(self.api, lab, node)

    def exec_target(self, container: str, programs: list[str]) -> tuple[str, str]:
        return inside.exec_target(self.api, container, programs)

    def exec_stream(
        self, container: str, cmd: list[str], write: Callable[[int, bytes], None]
    ) -> int:
        return inside.exec_stream(self.api, container, cmd, write)

    def run(
        self, container: str, cmd: list[str], timeout: float = inside.EXEC_DEADLINE
    ) -> tuple[int, bytes, bytes]:
        return inside.run(self.api, container, cmd, timeout)

    def put_file(self, container: str, dest: str, data: bytes, mode: int = 0o755) -> None:
        inside.put_file(self.api, container, dest, data, mode)

    def get_file(self, container: str, path: str) -> bytes:
        return inside.get_file(self.api, container, path)

    def app_log(self, container: str, tail: int = 200) -> str | None:
        return pods.app_log(self.api, container, tail)

    def processes(self, container: str, mark: str) -> list[tuple[int, int, str, str]]:
        return programs.processes(self.api, container, mark)

    def restart(self, container: str, ready: bytes) -> None:
        programs.restart(self.api, container, ready, rewire=lambda c: fabric.rewire(self.api, [c]))

    # --- terminals -----------------------------------------------------------------------------

    def shell(self, container: str, cmd: list[str]) -> int:
        return shell.interactive_shell(self.api, container, cmd)

    def open_tty(
        self, container: str, cmd: list[str], env: dict[str, str]
    ) -> tuple[str, socket.socket, int]:
        return tty.open_tty(self.api, container, cmd, env)

    def resize_tty(self, exec_id: str, rows: int, cols: int) -> None:
        tty.resize(self.api, exec_id, rows, cols)

    def kill_tty(self, container: str, terminal: str, pid: int = 0) -> int:
        return tty.kill_tree(self.api, container, terminal, pid)

    # --- watching segments (the portal's wire panel) -----------------------------------------

    def segment(self, lab: str, network: str) -> tuple[str, str]:
        return wiretap.where(self.api, lab, network)

    def tap(self, lab: str, network: str, bpf: str) -> tuple[str, socket.socket]:
        return wiretap.tap(self.api, lab, network, bpf)

    def untap(self, lab: str, tap: str) -> None:
        wiretap.untap(self.api, lab, tap)
