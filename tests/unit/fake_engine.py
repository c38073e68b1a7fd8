"""An in-memory engine that implements hoplab.engine.interface.EngineAPI, for unit tests only.

Like the real engine it keeps no lab state of its own: it holds Docker-shaped list entries
(containers and networks with Labels, Names, State, IPAM) and reads labs back through the real
`lab_state`. Its `up` and `down` run the real decisions and helpers (`reconcile.decide`,
`reconcile.apply` with its rollback, `node_labels`, `parallel`, `create_error`), so what the
unit tests prove about reconcile and rollback is proved about the code the Docker engine runs;
only the Docker calls themselves are replaced. It enforces the engine rules that matter to those
decisions: unique names, no overlapping subnets on one engine, no network removal while it has
endpoints. Each node has a small kernel (tests/unit/fake_kernel.py) that answers hoplab's own
commands, so the engine's impairment code and the runtime's reaper run here unchanged.

Faults are injected through `Faults`. Production code must never import this module.
"""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from hoplab.engine import impair
from hoplab.engine.bringup import create_error
from hoplab.engine.interface import Say
from hoplab.engine.parallel import parallel
from hoplab.engine.reconcile import apply, decide, node_labels, route_label
from hoplab.engine.state import (
    LabState,
    Progress,
    Taken,
    UpReport,
    lab_state,
    labs_from,
    no_progress,
    taken_from,
)
from hoplab.errors import Cancelled, HoplabError
from hoplab.model import labels as L
from hoplab.model.plan import NetPlan, NodePlan, Plan
from hoplab.model.topology import Topology
from tests.unit.fake_kernel import NO_NETEM, NodeKernel, Process

IMAGE_ID = "sha256:" + "f" * 64


@dataclass
class Faults:
    """What goes wrong, and when. Counters count calls across the whole engine, from 1.

    - fail_containers: container names whose create is refused by the engine;
    - never_ready: container names whose entrypoint reports an error instead of ready;
    - race_subnets: how many network creates find their subnet just taken by a stranger
      network (which then stays, as a real racing lab's would, until the test removes it);
    - cancel_after_creates: set the `cancel` event passed to `up` once this many nodes exist;
    - on_create: called with each container name just before its create (a test can block or
      raise KeyboardInterrupt there to stand for Ctrl-C at that moment);
    - exec_refused: container names where no exec can start (a full pids limit) until restart.
    """

    fail_containers: set[str] = field(default_factory=set)
    never_ready: set[str] = field(default_factory=set)
    race_subnets: int = 0
    cancel_after_creates: int = 0
    on_create: Callable[[str], None] | None = None
    exec_refused: set[str] = field(default_factory=set)


class FakeEngine(impair.LinkImpairments):
    """EngineAPI in memory. Thread-safe: a workshop room drives it from several threads."""

    def __init__(self, workers: int = 4, faults: Faults | None = None) -> None:
        self.workers = workers
        self.faults = faults or Faults()
        self.containers: dict[str, dict] = {}
        self.networks: dict[str, dict] = {}
        self.files: dict[tuple[str, str], bytes] = {}
        self.ran: list[tuple[str, list[str]]] = []
        self.events: list[tuple[str, str]] = []  # (verb, object name), in engine order
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._created_nodes = 0
        self.netem = True  # whether the engine's kernel has sch_netem (nodes made after a change)
        self.kernels: dict[str, NodeKernel] = {}  # container id -> its node's kernel
        self.logs: dict[str, str] = {}  # container name -> what its own-image program printed
        self.restarts: list[str] = []  # containers restarted, in order
        self.images_ensured = 0
        self.machine_size = (64, 2**40)  # CPUs and memory of the engine's host: tests shrink it
        self.host_rules = False
        self.ttys: dict[str, tuple[str, socket.socket]] = {}  # exec id -> container, far end
        self.taps: dict[str, tuple[str, socket.socket]] = {}  # tap id -> lab, far end
        self.tty_sizes: dict[str, tuple[int, int]] = {}

    # --- test controls, not part of EngineAPI -------------------------------------------------

    def objects(self, lab: str | None = None) -> tuple[list[dict], list[dict]]:
        """Labelled containers and networks of one lab (every lab when None)."""
        with self._lock:
            return (
                [c for c in self.containers.values() if _has_lab(c, lab)],
                [n for n in self.networks.values() if _has_lab(n, lab)],
            )

    def add_stranger_network(self, name: str, subnet: str, labels: dict | None = None) -> str:
        """A network hoplab did not make (no hoplab.lab label unless the test gives one)."""
        with self._lock:
            return self._add_network(name, IPv4Network(subnet), labels or {})

    def spawn(self, container: str, pid: int, uid: int, run: str, cmd: str) -> None:
        """A process in the node: `run` is its HOPLAB_RUN mark ('' for none)."""
        with self._lock:
            self.kernels[self._find(container)["Id"]].procs[pid] = Process(pid, uid, run, cmd)

    def kernel(self, container: str) -> NodeKernel:
        with self._lock:
            return self.kernels[self._find(container)["Id"]]

    def stop(self, container: str) -> None:
        """The node's process ended (a daemon restart, a kill): State becomes exited."""
        with self._lock:
            self._by_name(container)["State"] = "exited"

    # --- EngineAPI: reading --------------------------------------------------------------------

    def state(self, lab: str) -> LabState:
        containers, networks = self.objects(lab)
        return lab_state(lab, containers, networks)

    def labs(self) -> list[LabState]:
        return labs_from(*self.objects(None))

    def labs_labelled(self, key: str, value: str) -> list[str]:
        containers, _ = self.objects(None)
        return sorted({c["Labels"][L.LAB] for c in containers if c["Labels"].get(key) == value})

    def owners(self, room: str) -> dict[str, str]:
        containers, _ = self.objects(None)
        return {
            c["Labels"][L.OWNER]: c["Labels"][L.LAB]
            for c in containers
            if c["Labels"].get(L.WORKSHOP) == room and c["Labels"].get(L.OWNER)
        }

    def memory(self, lab: str) -> dict[str, int]:
        return {n.name: 8 << 20 for n in self.state(lab).nodes if n.state == "running"}

    def survey(self, lab: str) -> tuple[LabState, Taken]:
        """As the real engine: the lab's own objects and every network's subnets, read once."""
        with self._lock:
            networks = list(self.networks.values())
        return self.state(lab), taken_from(networks, lab)

    def machine(self) -> tuple[int, int]:
        return self.machine_size

    # --- EngineAPI: images (always there: the fake builds nothing) ----------------------------

    def ensure_image(self, hosts_dir: Path, say: Say) -> str:
        with self._lock:
            self.images_ensured += 1
        return IMAGE_ID

    def ensure_app_images(self, topo: Topology, node_image: str, say: Say) -> dict[str, str]:
        return {n.name: f"sha256:app-{n.name}" for n in topo.nodes if n.app is not None}

    # --- EngineAPI: up and down (the real decisions, fake objects) -------------------------------

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
        def create() -> dict[str, float]:
            parallel(
                lambda n: self._create_network(plan, n),
                plan.networks,
                "networks",
                progress,
                self.workers,
            )
            parallel(
                lambda n: self._create_node(plan, n, image, labels or {}, cancel),
                plan.nodes,
                "nodes",
                progress,
                self.workers,
            )
            return {}

        return apply(
            decide(current or self.state(plan.lab), plan, image),
            start=lambda names: parallel(
                lambda n: self._start(plan.node(n).container),
                names,
                "starting nodes",
                progress,
                self.workers,
            ),
            remove=lambda: self.down(plan.lab, progress),
            create=create,
        )

    def down(self, lab: str | None, progress: Progress = no_progress) -> tuple[int, int]:
        containers, _ = self.objects(lab)
        parallel(self._remove_container, containers, "removing nodes", progress, self.workers)
        _, networks = self.objects(lab)  # listed after the nodes are gone, as the engine does
        parallel(self._remove_network, networks, "removing networks", progress, self.workers)
        return len(containers), len(networks)

    def remove_host_rules(self, image: str) -> None:
        self.host_rules = False

    # --- EngineAPI: link impairments (the engine's real code, on the fake kernels) ------------

    def netem_missing(self, image: str) -> str:
        return "" if self.netem else NO_NETEM.decode()

    # apply_impairments, change_impairment and impairments: impair.LinkImpairments, on `run`

    # --- EngineAPI: inside nodes -------------------------------------------------------------

    def container(self, lab: str, node: str) -> dict[str, Any]:
        containers, _ = self.objects(lab)
        found = [c for c in containers if c["Labels"].get(L.NODE) == node]
        if not found:
            raise HoplabError(f"lab {lab!r} has no node {node!r}")
        return found[0]

    def exec_target(self, container: str, programs: list[str]) -> tuple[str, str]:
        return container, ""  # the fake starts no program containers

    def exec_stream(
        self, container: str, cmd: list[str], write: Callable[[int, bytes], None]
    ) -> int:
        code, out, err = self.run(container, cmd)
        write(1, out)
        write(2, err)
        return code

    def run(
        self, container: str, cmd: list[str], timeout: float = 300.0
    ) -> tuple[int, bytes, bytes]:
        """hoplab's own commands get the node kernel's answer; any other one succeeds."""
        with self._lock:
            found = self._find(container)
            if found.get("State") != "running":
                raise HoplabError(f"cannot run {cmd[0]!r} in {container}: not running")
            if found["Names"][0].lstrip("/") in self.faults.exec_refused:
                raise HoplabError(f"cannot run {cmd[0]!r} in {container}: pids limit reached")
            self.ran.append((container, list(cmd)))
            return self.kernels[found["Id"]].answer(cmd) or (0, b"", b"")

    def put_file(self, container: str, dest: str, data: bytes, mode: int = 0o755) -> None:
        with self._lock:
            self._find(container)
            self.files[(container, dest)] = data

    def get_file(self, container: str, path: str) -> bytes:
        with self._lock:
            self._find(container)
            try:
                return self.files[(container, path)]
            except KeyError:
                raise HoplabError(f"cannot fetch {container}:{path}: no such file") from None

    def app_log(self, container: str, tail: int = 200) -> str | None:
        with self._lock:
            self._find(container)
            said = self.logs.get(container)
        return None if said is None else "".join(said.splitlines(keepends=True)[-tail:])

    def processes(self, container: str, mark: str) -> list[tuple[int, int, str, str]]:
        """As `docker top`: every process, whatever state the node's exec is in."""
        with self._lock:
            procs = self.kernels[self._find(container)["Id"]].procs.values()
            return [(p.pid, p.uid, p.run, p.cmd) for p in sorted(procs, key=lambda p: p.pid)]

    def restart(self, container: str, ready: bytes) -> None:
        """Every process ends, and the namespace with its qdiscs and rules is made anew."""
        with self._lock:
            found = self._find(container)
            old = self.kernels[found["Id"]]
            self.kernels[found["Id"]] = NodeKernel(dict(old.ifaces), old.netem)
            found["State"] = "running"
            self.faults.exec_refused.discard(found["Names"][0].lstrip("/"))
            self.restarts.append(container)

    # --- EngineAPI: terminals (a socket pair stands for the exec's TTY) ------------------------

    def shell(self, container: str, cmd: list[str]) -> int:
        return self.run(container, cmd)[0]

    def open_tty(
        self, container: str, cmd: list[str], env: dict[str, str]
    ) -> tuple[str, socket.socket, int]:
        self.run(container, cmd)
        near, far = socket.socketpair()
        exec_id = f"x{next(self._ids):011d}"
        with self._lock:
            self.ttys[exec_id] = (container, far)
        return exec_id, near, 1000 + len(self.ttys)

    def resize_tty(self, exec_id: str, rows: int, cols: int) -> None:
        with self._lock:
            self.tty_sizes[exec_id] = (rows, cols)

    def kill_tty(self, container: str, terminal: str, pid: int = 0) -> int:
        """Closes every TTY opened in the container: its shell's processes end with it."""
        with self._lock:
            mine = [x for x, (c, _) in self.ttys.items() if c == container]
            for x in mine:
                self.ttys.pop(x)[1].close()
        return len(mine)

    # --- EngineAPI: watching segments (a socket pair stands for the tap's stream) ------------

    def segment(self, lab: str, network: str) -> tuple[str, str]:
        with self._lock:
            for n in self.networks.values():
                if n["Labels"].get(L.LAB) == lab and n["Labels"].get(L.NETWORK) == network:
                    return "host", f"br-{n['Id'][:12]}"
        raise HoplabError(f"lab {lab!r} has no network {network!r}")

    def tap(self, lab: str, network: str, bpf: str) -> tuple[str, socket.socket]:
        self.segment(lab, network)
        near, far = socket.socketpair()
        tap_id = f"w{next(self._ids):011d}"
        with self._lock:
            self.taps[tap_id] = (lab, far)
        return tap_id, near

    def untap(self, lab: str, tap: str) -> None:
        with self._lock:
            found = self.taps.get(tap)
            if found is None:
                return
            if found[0] != lab:
                raise HoplabError(f"{tap} is not a capture of lab {lab!r}")
            self.taps.pop(tap)[1].close()

    # --- the fake Docker objects ---------------------------------------------------------------

    def _create_network(self, plan: Plan, net: NetPlan) -> None:
        labels = {L.LAB: plan.lab, L.NETWORK: net.name, L.PLAN: plan.digest}
        with self._lock:
            if self.faults.race_subnets > 0:
                self.faults.race_subnets -= 1
                self._add_network(f"racer{next(self._ids)}", net.subnet, {})
            self._add_network(net.docker_name, net.subnet, labels)
            self.events.append(("create network", net.docker_name))

    def _add_network(self, name: str, subnet: IPv4Network, labels: dict) -> str:
        if any(n["Name"] == name for n in self.networks.values()):
            raise create_error("network", name, 409, f"network with name {name} already exists")
        for other in self.networks.values():
            if subnet.overlaps(IPv4Network(other["IPAM"]["Config"][0]["Subnet"])):
                raise create_error(
                    "network", name, 403, "Pool overlaps with other one on this address space"
                )
        nid = f"n{next(self._ids):011d}"
        self.networks[nid] = {
            "Id": nid,
            "Name": name,
            "Labels": dict(labels),
            "IPAM": {"Config": [{"Subnet": str(subnet)}]},
            "Containers": {},
        }
        return nid

    def _create_node(
        self,
        plan: Plan,
        node: NodePlan,
        image: str,
        extra: dict[str, str],
        cancel: threading.Event | None,
    ) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"bring-up of {plan.lab} was cancelled")
        if self.faults.on_create is not None:
            self.faults.on_create(node.container)
        labels = node_labels(plan, node, extra, "tester", "2026-01-01T00:00:00+00:00")
        with self._lock:
            if node.container in self.faults.fail_containers:
                raise create_error("container", node.container, 500, "injected create failure")
            if any(c["Names"][0] == "/" + node.container for c in self.containers.values()):
                raise create_error("container", node.container, 409, "name already in use")
            cid = f"c{next(self._ids):011d}"
            endpoints = {}
            for iface in node.interfaces:
                net = self._by_name(plan.network(iface.network).docker_name)
                net["Containers"][cid] = {}
                endpoints[net["Name"]] = {"IPAddress": str(iface.address)}
            self.kernels[cid] = NodeKernel(
                {str(i.address): f"eth{n}" for n, i in enumerate(node.interfaces)}, self.netem
            )
            self.containers[cid] = {
                "Id": cid,
                "Names": ["/" + node.container],
                "Labels": labels,
                "State": "created",
                "ImageID": image,
                "Env": [f"HOPLAB_ROUTES={route_label(node)}"],
                "NetworkSettings": {"Networks": endpoints},
            }
            self.events.append(("create container", node.container))
            self._created_nodes += 1
            if self._created_nodes == self.faults.cancel_after_creates and cancel is not None:
                cancel.set()
        self._start(node.container)

    def _start(self, name: str) -> None:
        with self._lock:
            c = self._by_name(name)
            if name in self.faults.never_ready:
                c["State"] = "exited"
                raise HoplabError(f"node {name} did not become ready: hoplab-error (injected)")
            c["State"] = "running"

    def _remove_container(self, container: dict) -> None:
        with self._lock:
            if self.containers.pop(container["Id"], None) is None:
                return
            self.kernels.pop(container["Id"], None)
            for net in self.networks.values():
                net["Containers"].pop(container["Id"], None)
            self.events.append(("remove container", container["Names"][0].lstrip("/")))

    def _remove_network(self, network: dict) -> None:
        with self._lock:
            current = self.networks.get(network["Id"])
            if current is None:
                return
            if current["Containers"]:
                raise HoplabError(f"cannot remove network {current['Name']}: active endpoints")
            del self.networks[network["Id"]]
            self.events.append(("remove network", current["Name"]))

    def _by_name(self, name: str) -> dict:
        for obj in itertools.chain(self.containers.values(), self.networks.values()):
            if name in (obj.get("Name"), *(n.lstrip("/") for n in obj.get("Names", ()))):
                return obj
        raise HoplabError(f"no such object: {name}")

    def _find(self, container: str) -> dict[str, Any]:
        """A container by id or name, as docker accepts either."""
        if container in self.containers:
            return self.containers[container]
        return self._by_name(container)


def _has_lab(obj: dict, lab: str | None) -> bool:
    value = obj["Labels"].get(L.LAB)
    return value is not None and (lab is None or value == lab)
