"""Bring labs up and down on the Docker Engine, and read them back from labels.

Speed comes from three choices: every create, start and remove runs in parallel; the low-level API
is used so that no create is followed by an inspect; and readiness is read from each node's log
stream (the entrypoint prints a line once its routes are in place), so bring-up needs no exec.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv4Network
from typing import Any, TypeVar

import docker
import docker.errors
import docker.types
from hoplab.engine.client import explain
from hoplab.errors import Cancelled, HoplabError, SubnetTaken
from hoplab.interrupts import sigint_deferred
from hoplab.model import labels as L
from hoplab.model.plan import NetPlan, NodePlan, Plan
from hoplab.model.topology import Role

T = TypeVar("T")
Progress = Callable[[str, int, int], None]
READY, FAILED = b"hoplab-ready", b"hoplab-error"
NODE_CAPS = ["NET_ADMIN", "NET_RAW"]
INHIBIT = "com.docker.network.bridge.inhibit_ipv4"
MTU_OPT = "com.docker.network.driver.mtu"
MEM_LIMIT = "256m"
PIDS_LIMIT = 256
READY_TIMEOUT = 60.0


def _no_progress(phase: str, done: int, total: int) -> None:
    pass


@dataclass(frozen=True)
class NodeState:
    name: str
    container: str
    role: str
    state: str
    addresses: dict[str, str]
    routes: tuple[str, ...]
    plan: str
    image: str = ""


@dataclass(frozen=True)
class LabState:
    """A lab as the engine sees it: rebuilt from labels alone."""

    name: str
    nodes: tuple[NodeState, ...] = ()
    networks: dict[str, str] = field(default_factory=dict)
    owner: str = ""
    created: str = ""
    source: str = ""
    # Every label of the first node, extra ones included (the pid of the test run that owns it).
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return bool(self.nodes or self.networks)

    @property
    def running(self) -> bool:
        return bool(self.nodes) and all(n.state == "running" for n in self.nodes)


@dataclass
class UpReport:
    """What `up` did and where the time went, for the CLI and the benchmark."""

    action: str
    timings: dict[str, float] = field(default_factory=dict)


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
        self._net_locks: dict[str, threading.Lock] = {}
        self._net_locks_guard = threading.Lock()

    @contextlib.contextmanager
    def _endpoints_of(self, networks: Iterable[str]) -> Iterator[None]:
        """Hold the networks a start or a removal adds endpoints to or removes them from.

        Docker 20.10 keeps a per-network endpoint count that concurrent updates on the same
        network can leave wrong; a network whose count never returns to zero cannot be removed
        until the daemon restarts. Different networks still proceed in parallel.
        """
        with self._net_locks_guard:
            locks = [self._net_locks.setdefault(n, threading.Lock()) for n in sorted(set(networks))]
        for lock in locks:  # sorted order: no two callers can deadlock
            lock.acquire()
        try:
            yield
        finally:
            for lock in reversed(locks):
                lock.release()

    # --- parallel helper --------------------------------------------------------------------

    def _parallel(
        self, fn: Callable[[T], Any], items: Iterable[T], phase: str, progress: Progress
    ) -> list[Any]:
        """Run fn over items with bounded workers; wait for every started call before raising.

        Waiting matters: an in-flight create that finishes after we roll back would leak.
        """
        items = list(items)
        if not items:
            return []
        progress(phase, 0, len(items))
        pool = ThreadPoolExecutor(max_workers=min(self.workers, len(items)))
        futures: list[Future] = [pool.submit(fn, item) for item in items]
        try:
            pending = set(futures)
            done_count = 0
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                done_count += len(done)
                progress(phase, done_count, len(items))
                if any(f.exception() for f in done):
                    for f in pending:
                        f.cancel()
                    break
        finally:
            # Also runs on KeyboardInterrupt: cancel what has not started, finish what has.
            pool.shutdown(wait=True, cancel_futures=True)
        errors = [f.exception() for f in futures if not f.cancelled() and f.exception()]
        if errors:
            raise errors[0]
        return [f.result() for f in futures]

    # --- reading labs back -------------------------------------------------------------------

    def state(self, lab: str) -> LabState:
        """Two list calls rebuild the whole lab: labels carry roles, routes and the plan digest."""
        containers = self.api.containers(all=True, filters=L.lab_filter(lab))
        networks = self.api.networks(filters=L.lab_filter(lab))
        return _lab_state(lab, containers, networks)

    def labs(self) -> list[LabState]:
        containers = self.api.containers(all=True, filters=L.lab_filter(None))
        networks = self.api.networks(filters=L.lab_filter(None))
        names = sorted({o["Labels"][L.LAB] for o in containers + networks})
        return [
            _lab_state(
                name,
                [c for c in containers if c["Labels"][L.LAB] == name],
                [n for n in networks if n["Labels"][L.LAB] == name],
            )
            for name in names
        ]

    def labs_labelled(self, key: str, value: str) -> list[str]:
        """Names of the labs whose nodes carry key=value (e.g. one workshop's room), sorted."""
        found = self.api.containers(all=True, filters={"label": [L.LAB, f"{key}={value}"]})
        return sorted({c["Labels"][L.LAB] for c in found})

    def memory(self, lab: str) -> dict[str, int]:
        """Bytes each running node of the lab uses (cgroup usage minus inactive page cache).

        Page cache is left out because the kernel reclaims it under pressure: what remains is
        what a node really costs the machine.
        """
        nodes = [n for n in self.state(lab).nodes if n.state == "running"]

        def usage(container: str) -> int:
            stats = self.api.stats(container, stream=False, one_shot=True)["memory_stats"]
            detail = stats.get("stats") or {}
            cache = detail.get("inactive_file", detail.get("cache", 0))
            return int(stats.get("usage", 0) - cache)

        values = self._parallel(usage, [n.container for n in nodes], "memory", _no_progress)
        return {n.name: v for n, v in zip(nodes, values, strict=True)}

    def taken_subnets(self, exclude_lab: str) -> list[IPv4Network]:
        """Subnets of every network on the engine except this lab's own, for the planner."""
        out = []
        for net in self.api.networks():
            if (net.get("Labels") or {}).get(L.LAB) == exclude_lab:
                continue
            for cfg in (net.get("IPAM") or {}).get("Config") or []:
                with contextlib.suppress(ValueError, KeyError):
                    out.append(IPv4Network(cfg["Subnet"]))
        return out

    # --- up --------------------------------------------------------------------------------------

    def up(
        self,
        plan: Plan,
        image: str,
        progress: Progress = _no_progress,
        labels: dict[str, str] | None = None,
        current: LabState | None = None,
        cancel: threading.Event | None = None,
    ) -> UpReport:
        """Create the lab, or leave a matching one alone; on any failure leave zero objects.

        `labels` are extra labels for every node (an owner, the pid of a test run), so that
        whoever made a lab can find and reap it from the engine alone. `current` is the lab's
        state if the caller just read it, to save the round trips. Setting `cancel` stops nodes
        not yet created and rolls the lab back (Cancelled).
        """
        current = current or self.state(plan.lab)
        if current.exists:
            if _matches(current, plan, image):
                stopped = [plan.node(n.name) for n in current.nodes if n.state != "running"]
                if not stopped:
                    return UpReport("unchanged")
                started = time.monotonic()
                self._parallel(
                    lambda n: self._start_node(n, plan), stopped, "starting nodes", progress
                )
                return UpReport("restarted", {"start": time.monotonic() - started})
            self.down(plan.lab, progress)
        report = UpReport("created")
        t0 = time.monotonic()
        # Networks are created in their own pool while nodes already start: a node waits only
        # for the networks it joins, so the two phases overlap instead of queueing.
        net_pool = ThreadPoolExecutor(max_workers=min(self.workers, len(plan.networks)) or 1)
        try:
            nets = {n.name: net_pool.submit(self._create_network, plan, n) for n in plan.networks}
            made = [0]

            def network_done(_f: Future) -> None:
                made[0] += 1
                progress("networks", made[0], len(nets))

            progress("networks", 0, len(nets))
            for future in nets.values():
                future.add_done_callback(network_done)
            steps = self._parallel(
                lambda n: self._create_node(plan, n, image, labels or {}, nets, cancel),
                plan.nodes,
                "nodes",
                progress,
            )
            report.timings = {
                "networks (overlapped)": max((f.result() for f in nets.values()), default=0.0),
                "nodes": time.monotonic() - t0,
            }
            for step in ("networks", "create", "connect", "start", "ready"):
                values = sorted(s[step] for s in steps)
                report.timings[f"{step} (median node)"] = values[len(values) // 2]
                report.timings[f"{step} (slowest node)"] = values[-1]
        except BaseException:
            net_pool.shutdown(wait=True, cancel_futures=True)
            with sigint_deferred():
                self.down(plan.lab, progress)
            raise
        finally:
            net_pool.shutdown(wait=True, cancel_futures=True)
        return report

    def _create_network(self, plan: Plan, net: NetPlan) -> float:
        """Create one network; returns its seconds for --profile."""
        started = time.monotonic()
        options = {INHIBIT: "true"}
        if net.mtu:
            options[MTU_OPT] = str(net.mtu)
        ipam = docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=str(net.subnet), gateway=str(net.gateway))]
        )
        try:
            self.api.create_network(
                net.docker_name,
                driver="bridge",
                options=options,
                ipam=ipam,
                check_duplicate=True,
                labels={L.LAB: plan.lab, L.NETWORK: net.name, L.PLAN: plan.digest},
            )
        except docker.errors.APIError as err:
            raise _create_error("network", net.docker_name, err) from None
        return time.monotonic() - started

    def _create_node(
        self,
        plan: Plan,
        node: NodePlan,
        image: str,
        extra: dict[str, str],
        nets: dict[str, Future],
        cancel: threading.Event | None = None,
    ) -> dict[str, float]:
        """Wait for its networks, create, connect, start, wait ready; seconds per step."""
        tn = time.monotonic()
        for iface in node.interfaces:
            nets[iface.network].result()  # re-raises a failed network here
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"bring-up of {plan.lab} was cancelled")
        t0 = time.monotonic()
        first, *rest = node.interfaces
        api = self.api
        sysctls = {
            "net.ipv4.ip_forward": "1" if node.role is Role.ROUTER else "0",
            "net.ipv6.conf.all.disable_ipv6": "1",
            "net.ipv6.conf.default.disable_ipv6": "1",
        }
        host_config = api.create_host_config(
            network_mode=plan.network(first.network).docker_name,
            cap_add=NODE_CAPS,
            sysctls=sysctls,
            init=True,
            extra_hosts={name: str(ip) for name, ip in plan.names},
            dns=["127.0.0.1"],  # names come from /etc/hosts; nothing is forwarded outside
            mem_limit=self.mem_limit,
            pids_limit=self.pids_limit,
        )
        networking = api.create_networking_config(
            {
                plan.network(first.network).docker_name: api.create_endpoint_config(
                    ipv4_address=str(first.address)
                )
            }
        )
        routes = ";".join(str(r) for r in node.routes)
        try:
            created = api.create_container(
                image,
                name=node.container,
                hostname=node.name,
                labels=extra
                | {
                    L.LAB: plan.lab,
                    L.NODE: node.name,
                    L.ROLE: str(node.role),
                    L.PLAN: plan.digest,
                    L.ROUTES: routes,
                    L.SOURCE: plan.source,
                    L.OWNER: extra.get(L.OWNER) or _owner(),  # a workshop names its participant
                    L.CREATED: datetime.now(UTC).isoformat(timespec="seconds"),
                },
                environment={"HOPLAB_ROUTES": routes},
                host_config=host_config,
                networking_config=networking,
                detach=True,
            )
        except docker.errors.APIError as err:
            raise _create_error("container", node.container, err) from None
        t1 = time.monotonic()
        for iface in rest:
            api.connect_container_to_network(
                created["Id"],
                plan.network(iface.network).docker_name,
                ipv4_address=str(iface.address),
            )
        t2 = time.monotonic()
        self._start(node, plan)
        t3 = time.monotonic()
        self._wait_ready(node.container)
        t4 = time.monotonic()
        return {
            "networks": t0 - tn,
            "create": t1 - t0,
            "connect": t2 - t1,
            "start": t3 - t2,
            "ready": t4 - t3,
        }

    def _start(self, node: NodePlan, plan: Plan) -> None:
        with self._endpoints_of(plan.network(i.network).docker_name for i in node.interfaces):
            self.api.start(node.container)

    def _start_node(self, node: NodePlan, plan: Plan) -> None:
        self._start(node, plan)
        self._wait_ready(node.container)

    def _wait_ready(self, container: str) -> None:
        """Follow the log stream until the entrypoint reports; its end means the node died."""
        stream = self.api.logs(container, stream=True, follow=True)
        seen = b""
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            for chunk in stream:
                seen += chunk
                if READY in seen:
                    return
                if FAILED in seen or time.monotonic() > deadline:
                    break
        finally:
            stream.close()
        raise HoplabError(
            f"node {container} did not become ready: {seen.decode(errors='replace').strip()}",
            hint="run `hoplab status`; the node's log above says what its entrypoint saw",
        )

    # --- down and clean ----------------------------------------------------------------------

    def down(self, lab: str | None, progress: Progress = _no_progress) -> tuple[int, int]:
        """Remove one lab's objects (or every hoplab object) in parallel; never anything else.

        Once started it finishes: a Ctrl-C half-way would leave networks without nodes.
        """
        with sigint_deferred():
            containers = self.api.containers(all=True, filters=L.lab_filter(lab))
            self._parallel(self._remove_container, containers, "removing nodes", progress)
            networks = self.api.networks(filters=L.lab_filter(lab))
            self._parallel(
                lambda n: self._remove_network(n["Id"]), networks, "removing networks", progress
            )
        return len(containers), len(networks)

    def _remove_container(self, container: dict) -> None:
        networks = ((container.get("NetworkSettings") or {}).get("Networks") or {}).keys()
        try:
            with self._endpoints_of(networks):
                self.api.remove_container(container["Id"], force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as err:
            if "already in progress" not in explain(err):
                raise

    def _remove_network(self, nid: str, patience: float = 60.0) -> None:
        """Remove a network once the engine has let go of its endpoints.

        After a mass removal the engine can report "active endpoints" for many seconds while it
        tears veths down; endpoints it still lists are force-disconnected, then we back off.
        """
        deadline = time.monotonic() + patience
        delay = 0.05
        while True:
            try:
                self.api.remove_network(nid)
                return
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as err:
                if "active endpoints" not in explain(err) or time.monotonic() > deadline:
                    raise HoplabError(
                        f"cannot remove network {nid[:12]}: {explain(err)}",
                        hint="run `hoplab clean` again in a moment",
                    ) from None
            with contextlib.suppress(docker.errors.APIError):
                for endpoint in self.api.inspect_network(nid).get("Containers") or {}:
                    self.api.disconnect_container_from_network(endpoint, nid, force=True)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    # --- running things in nodes ---------------------------------------------------------------

    def container(self, lab: str, node: str) -> dict:
        """The node's container, refusing any container that is not this lab's."""
        found = self.api.containers(
            all=True, filters={"label": [f"{L.LAB}={lab}", f"{L.NODE}={node}"]}
        )
        if not found:
            known = sorted(n.name for n in self.state(lab).nodes)
            raise HoplabError(
                f"lab {lab!r} has no node {node!r}",
                hint=f"nodes: {', '.join(known)}" if known else "bring the lab up: hoplab up",
            )
        return found[0]

    def exec_stream(
        self, container: str, cmd: list[str], write: Callable[[int, bytes], None]
    ) -> int:
        """Run cmd in the node, passing output through as it comes; returns the exit code."""
        exec_id = self.api.exec_create(container, cmd, stdout=True, stderr=True)["Id"]
        for out, err in self.api.exec_start(exec_id, stream=True, demux=True):
            if out:
                write(1, out)
            if err:
                write(2, err)
        return int(self.api.exec_inspect(exec_id)["ExitCode"])

    def run(self, container: str, cmd: list[str]) -> tuple[int, bytes, bytes]:
        """Run cmd in the node and collect (exit code, stdout, stderr)."""
        try:
            exec_id = self.api.exec_create(container, cmd, stdout=True, stderr=True)["Id"]
            out, err = self.api.exec_start(exec_id, demux=True)
            code = int(self.api.exec_inspect(exec_id)["ExitCode"])
        except docker.errors.APIError as e:
            raise HoplabError(f"cannot run {cmd[0]!r} in {container}: {explain(e)}") from None
        return code, out or b"", err or b""

    def put_file(self, container: str, dest: str, data: bytes, mode: int = 0o755) -> None:
        """Copy bytes into the node through the API (no bind mounts, so remote engines work)."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(os.path.basename(dest))
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
        try:
            self.api.put_archive(container, os.path.dirname(dest) or "/", buf.getvalue())
        except docker.errors.APIError as e:
            raise HoplabError(f"cannot copy into {container}:{dest}: {explain(e)}") from None

    def get_file(self, container: str, path: str) -> bytes:
        """Fetch one file out of the node through the API."""
        try:
            stream, _ = self.api.get_archive(container, path)
        except docker.errors.APIError as e:
            raise HoplabError(f"cannot fetch {container}:{path}: {explain(e)}") from None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            f = tar.extractfile(member) if member else None
            return f.read() if f else b""


def _owner() -> str:
    try:
        return os.environ.get("HOPLAB_OWNER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _create_error(kind: str, name: str, err: docker.errors.APIError) -> HoplabError:
    reason = explain(err)
    if err.status_code == 409 or "already exists" in reason:
        return HoplabError(
            f"a {kind} named {name!r} already exists and does not belong to this lab",
            hint="hoplab never touches objects it did not create: rename or remove it yourself, "
            "or pick another lab name with --name",
        )
    if "overlaps" in reason.lower():
        return SubnetTaken(
            f"cannot create {kind} {name!r}: {reason}",
            hint="another lab took the subnet meanwhile; run the command again",
        )
    return HoplabError(f"cannot create {kind} {name!r}: {reason}")


def _matches(current: LabState, plan: Plan, image: str) -> bool:
    """Same nodes, networks, plan and image: anything else is rebuilt rather than patched."""
    return (
        {n.name for n in current.nodes} == {n.name for n in plan.nodes}
        and set(current.networks) == {n.name for n in plan.networks}
        and all(n.plan == plan.digest and n.image == image for n in current.nodes)
    )


def _lab_state(lab: str, containers: list[dict], networks: list[dict]) -> LabState:
    prefix = f"{lab}-"
    nodes = []
    for c in sorted(containers, key=lambda c: c["Labels"].get(L.NODE, "")):
        lbl = c["Labels"]
        nets = (c.get("NetworkSettings") or {}).get("Networks") or {}
        nodes.append(
            NodeState(
                name=lbl.get(L.NODE, ""),
                container=c["Names"][0].lstrip("/"),
                role=lbl.get(L.ROLE, ""),
                state=c.get("State", ""),
                addresses={
                    k.removeprefix(prefix): v.get("IPAddress", "")
                    for k, v in nets.items()
                    if k.startswith(prefix)
                },
                routes=tuple(r for r in lbl.get(L.ROUTES, "").split(";") if r),
                plan=lbl.get(L.PLAN, ""),
                image=c.get("ImageID", ""),
            )
        )
    subnets = {}
    for n in networks:
        cfg = (n.get("IPAM") or {}).get("Config") or [{}]
        subnets[n["Labels"].get(L.NETWORK, n["Name"])] = cfg[0].get("Subnet", "")
    first = containers[0]["Labels"] if containers else {}
    return LabState(
        name=lab,
        nodes=tuple(nodes),
        networks=dict(sorted(subnets.items())),
        owner=first.get(L.OWNER, ""),
        created=first.get(L.CREATED, ""),
        source=first.get(L.SOURCE, ""),
        labels=dict(first),
    )


def json_state(state: LabState) -> str:
    return json.dumps(
        {
            "name": state.name,
            "owner": state.owner,
            "created": state.created,
            "networks": state.networks,
            "nodes": [n.__dict__ | {"routes": list(n.routes)} for n in state.nodes],
        },
        indent=2,
    )
