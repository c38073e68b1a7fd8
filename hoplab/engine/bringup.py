"""Creating a lab: networks, then each node (create, connect, start, wait ready), in parallel.

Speed comes from three choices: every create and start runs in parallel, and network creation
overlaps node start (a node waits only for the networks it joins); the low-level API is used so
that no create is followed by an inspect; and readiness is read from each node's log stream (the
entrypoint prints a line once its routes are in place), so bring-up needs no exec.
Rollback is not here: the Engine wraps `create` in `or_roll_back` with its teardown.
"""

from __future__ import annotations

import getpass
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import docker
import docker.errors
import docker.types

from hoplab.engine import egress, fabric
from hoplab.engine.client import explain
from hoplab.engine.endpoints import EndpointLocks, spread
from hoplab.engine.parallel import Workers, parallel
from hoplab.engine.pods import Pods, PodStart
from hoplab.engine.reconcile import node_labels, readiness, route_label, step_timings
from hoplab.engine.state import MTU_OPT, Progress
from hoplab.errors import Cancelled, HoplabError, SubnetTaken
from hoplab.model import labels as L
from hoplab.model.plan import NetPlan, NodePlan, Plan

NODE_CAPS = ["NET_ADMIN", "NET_RAW"]
INHIBIT = "com.docker.network.bridge.inhibit_ipv4"
# A node's memory, page cache included: every exercise and every assignment's grading peaked at
# 35 MiB in a node (measured, the default lab). The room's capacity rule budgets each node at this
# limit (workshop/placement.py), so 128 MiB keeps 20 labs on a 2-core, 24 GiB host, all full.
MEM_LIMIT = "128m"
PIDS_LIMIT = 256
# One core's worth per node, for the node's whole cgroup: unlike RLIMIT_CPU, forking cannot renew
# it, and a spinning node leaves the rest of the machine to the other nodes and labs.
CPU_LIMIT = 1.0
READY_TIMEOUT = 60.0
READY_WORKERS = 64  # readiness waits at once: each is an open log stream, no CPU


@dataclass(frozen=True)
class Limits:
    """Per-node resource limits, set at creation."""

    mem_limit: str = MEM_LIMIT
    pids_limit: int = PIDS_LIMIT
    cpus: float = CPU_LIMIT


class BringUp:
    """Creates and starts a lab's objects; holds no lab state, only the engine's locks."""

    def __init__(
        self,
        api: docker.APIClient,
        endpoints: EndpointLocks,
        workers: int,
        limits: Limits,
        wiring: str = fabric.DOCKER,
    ) -> None:
        self.api, self.endpoints, self.workers, self.limits = api, endpoints, workers, limits
        self.wiring = wiring

    def create(
        self,
        plan: Plan,
        image: str,
        progress: Progress,
        labels: dict[str, str],
        cancel: threading.Event | None,
    ) -> dict[str, float]:
        """Create every network and node of the plan; returns the step timings.

        Networks are created by workers of their own while nodes already start. On failure every
        call in flight is waited for before raising, so the caller's rollback sees them all.
        With fabric wiring there are no Docker networks: the fabric and its helper run on that
        worker instead, and each node's readiness first waits for the helper.
        """
        t0 = time.monotonic()
        wiring = (
            fabric.Wiring(self.api, plan, image, labels) if self.wiring == fabric.FABRIC else None
        )
        net_workers = Workers(1 if wiring else min(self.workers, len(plan.networks)))
        try:
            if wiring is not None:
                wired: Future[Any] | None = net_workers.submit(wiring.run)
                nets = {}
            else:
                wired = None
                nets = {
                    n.name: net_workers.submit(self.create_network, plan, n) for n in plan.networks
                }
            made = [0]

            def network_done(_f: Future[Any]) -> None:
                made[0] += 1
                progress("networks", made[0], len(nets))

            progress("networks", 0, len(nets))
            for future in nets.values():
                future.add_done_callback(network_done)
            pods = self.pods(plan, labels, cancel)  # own images start as their nodes get ready
            # Waiting for a node's entrypoint is I/O on a log stream: workers of its own, so the
            # workers that create and start nodes never sit in it.
            ready_workers = Workers(min(READY_WORKERS, len(plan.nodes)))
            try:
                pods.begin(progress)

                def one(n: NodePlan) -> Future[Any]:
                    steps = self.create_node(plan, n, image, labels, nets, cancel, wiring)
                    return ready_workers.submit(self.node_ready, n, steps, pods, wired)

                waits = parallel(
                    one,
                    spread(plan.nodes, lambda n: [i.network for i in n.interfaces]),
                    "nodes",
                    progress,
                    self.workers,
                )
                steps = [w.result() for w in waits]
            except BaseException:
                if wiring is not None:
                    wiring.abort()  # its helper may wait for nodes that will never start
                ready_workers.close()
                pods.finish(failed=True)  # no user container may still be starting
                raise
            finally:
                ready_workers.close()  # every readiness wait that began has returned
            slowest_net = max((f.result() for f in nets.values()), default=0.0)
            timings = step_timings(slowest_net, time.monotonic() - t0, steps)
            if wired is not None:
                timings |= wired.result()
            return timings | pods.finish(failed=False)
        except BaseException:
            if wiring is not None:
                wiring.abort()
            raise
        finally:
            net_workers.close()  # every network create that began has returned (Ctrl-C included)

    def node_ready(
        self,
        node: NodePlan,
        steps: dict[str, float],
        pods: PodStart,
        wired: Future[Any] | None = None,
    ) -> dict[str, Any]:
        """Wait for the node's entrypoint; then its own-image program may start. Its steps.
        wired: the fabric's helper, which must have wired the node before it can be ready."""
        t0 = time.monotonic()
        if wired is not None:
            wired.result()  # a helper that failed fails here at once, not after READY_TIMEOUT
        self.wait_ready(node.container)
        return pods.node_ready(node.name, steps | {"ready": time.monotonic() - t0})

    def pods(self, plan: Plan, labels: dict[str, str], cancel: threading.Event | None) -> PodStart:
        """Own-image nodes' containers, each once its node and every router are ready."""
        limits = {
            "mem_limit": self.limits.mem_limit,
            "memswap_limit": self.limits.mem_limit,
            "pids_limit": self.limits.pids_limit,
            "nano_cpus": int(self.limits.cpus * 1e9),
        }
        extra = labels | {L.OWNER: labels.get(L.OWNER) or owner()}
        return Pods(self.api, limits).starter(plan, extra, cancel)

    def create_network(self, plan: Plan, net: NetPlan) -> float:
        """Create one network; returns its seconds for --profile."""
        started = time.monotonic()
        options = {INHIBIT: "true", **egress.network_options()}
        options[egress.BRIDGE_OPT] = egress.bridge_name(net.docker_name)  # what the rules match
        if net.mtu:
            options[MTU_OPT] = str(net.mtu)
        pools = [docker.types.IPAMPool(subnet=str(net.subnet), gateway=str(net.gateway))]
        subnet6 = plan.six.subnet(net.name) if plan.six else None
        if plan.six and subnet6:  # the host's bridge holds this gateway; no node uses it
            gateway6 = str(plan.six.gateway(net.name))
            pools.append(docker.types.IPAMPool(subnet=str(subnet6), gateway=gateway6))
        ipam = docker.types.IPAMConfig(pool_configs=pools)
        try:
            self.api.create_network(
                net.docker_name,
                driver="bridge",
                options=options,
                ipam=ipam,
                enable_ipv6=subnet6 is not None,
                check_duplicate=True,
                labels={L.LAB: plan.lab, L.NETWORK: net.name, L.PLAN: plan.digest},
            )
        except docker.errors.APIError as err:
            raise create_error("network", net.docker_name, err.status_code, explain(err)) from None
        return time.monotonic() - started

    def host_config(self, plan: Plan, node: NodePlan, wired: bool = False) -> dict[str, Any]:
        """Capabilities, sysctls, names and limits of one node: the security baseline lives here.
        wired: fabric wiring, so the node starts in a namespace of its own with no interface."""
        first = node.interfaces[0]
        ipv6 = plan.six is not None and plan.six.speaks(node.name)
        sysctls = node.kind.sysctls(ipv6)  # /proc/sys is read-only once it runs
        hosts = [f"{name}:{ip}" for name, ip in plan.names]
        if plan.six is not None and ipv6:
            hosts += [f"{name}:{ip}" for name, ip in plan.six.names]  # AAAA beside A
        return self.api.create_host_config(
            network_mode="none" if wired else plan.network(first.network).docker_name,
            cap_add=NODE_CAPS,
            sysctls=sysctls,
            init=True,
            extra_hosts=hosts,
            dns=["127.0.0.1"],  # names come from /etc/hosts; nothing is forwarded outside
            mem_limit=self.limits.mem_limit,
            memswap_limit=self.limits.mem_limit,  # swap equal to memory: none beyond it
            pids_limit=self.limits.pids_limit,
            nano_cpus=int(self.limits.cpus * 1e9),
            security_opt=["no-new-privileges"],  # setuid binaries give nobody nothing
        )

    def create_node(
        self,
        plan: Plan,
        node: NodePlan,
        image: str,
        extra: dict[str, str],
        nets: dict[str, Future[Any]],
        cancel: threading.Event | None = None,
        wiring: fabric.Wiring | None = None,
    ) -> dict[str, float]:
        """Wait for its networks, create, connect, start; seconds per step (ready: node_ready)."""
        tn = time.monotonic()
        for iface in node.interfaces:
            if iface.network in nets:
                nets[iface.network].result()  # re-raises a failed network here
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"bring-up of {plan.lab} was cancelled")
        t0 = time.monotonic()
        first, *rest = node.interfaces
        api = self.api
        # types-docker's stub wants one EndpointConfig; docker-py takes network -> EndpointConfig
        networking = api.create_networking_config(
            {  # type: ignore[arg-type]
                plan.network(first.network).docker_name: api.create_endpoint_config(
                    ipv4_address=str(first.address), ipv6_address=v6(plan, node, first.network)
                )
            }
        )
        created_at = datetime.now(UTC).isoformat(timespec="seconds")
        labels = node_labels(plan, node, extra, owner(), created_at)
        environment = {"HOPLAB_ROUTES": routes_env(plan, node)}
        if wiring is not None:
            labels |= wiring.node_labels(node)
            environment |= wiring.node_env(node)
            rest = []
        try:
            created = api.create_container(
                image,
                name=node.container,
                hostname=node.name,
                labels=labels,
                environment=environment,
                entrypoint=fabric.NODE_ENTRYPOINT if wiring is not None else None,
                host_config=self.host_config(plan, node, wired=wiring is not None),
                networking_config=None if wiring is not None else networking,
                detach=True,
            )
        except docker.errors.APIError as err:
            raise create_error("container", node.container, err.status_code, explain(err)) from None
        t1 = time.monotonic()
        for iface in rest:
            api.connect_container_to_network(
                created["Id"],
                plan.network(iface.network).docker_name,
                ipv4_address=str(iface.address),
                ipv6_address=v6(plan, node, iface.network),
            )
        t2 = time.monotonic()
        self.start(node, plan)
        t3 = time.monotonic()
        return {"networks": t0 - tn, "create": t1 - t0, "connect": t2 - t1, "start": t3 - t2}

    def start(self, node: NodePlan, plan: Plan) -> None:
        if self.wiring == fabric.FABRIC:  # no Docker network: no endpoint to count (moby#42119)
            self.api.start(node.container)
            return
        with self.endpoints.holding(plan.network(i.network).docker_name for i in node.interfaces):
            self.api.start(node.container)

    def start_node(self, node: NodePlan, plan: Plan) -> None:
        """Start a stopped node of a kept lab and wait until its routes are back."""
        self.start(node, plan)
        self.wait_ready(node.container)

    def restart_nodes(self, plan: Plan, names: tuple[str, ...], progress: Progress) -> None:
        """Start a kept lab's stopped nodes, in place; with fabric wiring, wire them again.

        A fabric-wired node comes back with an empty namespace, and a stopped fabric (a daemon
        restart stops every container) took every link of the lab with it: the fabric is started
        again and one helper makes its bridges and wires every node, running ones included.
        """
        nodes = [plan.node(n) for n in names]
        if self.wiring != fabric.FABRIC:
            parallel(
                lambda n: self.start_node(n, plan), nodes, "starting nodes", progress, self.workers
            )
            return
        emptied = fabric.start_fabric_again(self.api, plan.lab)
        parallel(lambda n: self.start(n, plan), nodes, "starting nodes", progress, self.workers)
        again = plan.nodes if emptied else nodes
        fabric.rewire(self.api, [n.container for n in again], bridges=emptied)
        parallel(
            lambda n: self.wait_ready(n.container), nodes, "nodes ready", progress, self.workers
        )

    def wait_ready(self, container: str) -> None:
        """Follow the log stream until the entrypoint reports; its end means the node died."""
        stream = self.api.logs(container, stream=True, follow=True)
        seen = b""
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            for chunk in stream:
                seen += chunk
                verdict = readiness(seen)
                if verdict:
                    return
                if verdict is False or time.monotonic() > deadline:
                    break
        finally:
            stream.close()
        raise HoplabError(
            f"node {container} did not become ready: {seen.decode(errors='replace').strip()}",
            hint="run `hoplab status`; the node's log above says what its entrypoint saw",
        )


def v6(plan: Plan, node: NodePlan, network: str) -> str | None:
    """The node's planned IPv6 address on that network, or None (IPv4 only there)."""
    addr = plan.six.address_or_none(node.name, network) if plan.six else None
    return str(addr) if addr else None


def routes_env(plan: Plan, node: NodePlan) -> str:
    """Both families' routes for the entrypoint (`ip route replace` takes either)."""
    six = plan.six.route_text(node.name) if plan.six else ""
    return ";".join(r for r in (route_label(node), six) if r)


def owner() -> str:
    """Who made the lab: HOPLAB_OWNER, else the user running hoplab."""
    try:
        return os.environ.get("HOPLAB_OWNER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def create_error(kind: str, name: str, status: int | None, reason: str) -> HoplabError:
    """What a refused create means for the user: a stranger's name, a raced subnet, or other."""
    if status == 409 or "already exists" in reason:
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
