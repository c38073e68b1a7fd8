"""The parallel docker-py floor: the fastest bring-up the engine allows for a lab's plan.

The same networks and containers hoplab makes (its bridge options and, given hoplab's
host_config, its container settings), from the same image, created, connected and started in
parallel with docker-py (16 workers, as hoplab's engine), then removed in parallel; no addresses
chosen, no routes, no labels read back, no readiness wait. Anything hoplab spends above this is
its own. It is a yardstick, so it lives in bench/, never in hoplab.

One constraint of the engine is kept: starts and removals that touch the same network hold that
network's lock (hoplab.engine.endpoints), because the daemon here (Docker 20.10) loses count of a
network's endpoints under concurrent changes (moby#42119) and the network then cannot be removed
until the daemon restarts. On a shared engine a floor that risks that is not an option;
`endpoint_lock=False` exists for a throwaway engine only.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import docker

from hoplab.engine import egress
from hoplab.engine.bringup import INHIBIT
from hoplab.engine.endpoints import EndpointLocks, spread
from hoplab.model.plan import NodePlan, Plan

LABEL = "hoplab-bench.floor"  # not a hoplab.* key: the floor's objects are no hoplab lab
WORKERS = 16
T = TypeVar("T")


class TimedLocks(EndpointLocks):
    """hoplab's per-network locks, adding up the seconds callers wait to get them: the cost of
    the moby#42119 serialization, measured without running a single unlocked start."""

    def __init__(self) -> None:
        super().__init__()
        self.waited = 0.0
        self._sum = threading.Lock()

    @contextlib.contextmanager
    def holding(self, networks: Iterable[str]) -> Iterator[None]:
        t0 = time.perf_counter()
        with super().holding(networks):
            waited = time.perf_counter() - t0
            with self._sum:
                self.waited += waited
            yield


@dataclass
class Made:
    """What one floor round created, so a failure or Ctrl-C still removes all of it."""

    networks: dict[str, str] = field(default_factory=dict)  # name -> id
    containers: dict[str, list[str]] = field(default_factory=dict)  # id -> its networks


def each(fn: Callable[[T], object], items: Iterable[T], workers: int = WORKERS) -> list:
    """fn over items in parallel; every call finishes before the first error is raised."""
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as workers:
        futures = [workers.submit(fn, item) for item in items]
    return [f.result() for f in futures]


def up(
    api: docker.APIClient,
    plan: Plan,
    image: str,
    made: Made,
    locks: TimedLocks | None,
    workers: int = WORKERS,
    host_config: Callable[[NodePlan], dict] | None = None,
) -> None:
    """Networks in parallel, then every node created, connected and started in parallel.

    host_config: hoplab's own for a node (the same containers: capabilities, sysctls, memory,
    pids and CPU limits); None gives a bare container (NET_ADMIN, init) for comparison."""

    def network(net) -> None:  # noqa: ANN001 (NetPlan)
        pools = [docker.types.IPAMPool(subnet=str(net.subnet), gateway=str(net.gateway))]
        subnet6 = plan.six.subnet(net.name) if plan.six else None
        if subnet6 is not None:  # a dual-stack lab's networks are dual-stack here too
            pools.append(docker.types.IPAMPool(subnet=str(subnet6)))
        ipam = docker.types.IPAMConfig(pool_configs=pools)
        # The driver options of a lab network (no gateway address, no NAT, a hl- bridge name
        # that the host's egress rules cover), so the bridges are the same as hoplab's.
        options = {INHIBIT: "true", **egress.network_options()}
        options[egress.BRIDGE_OPT] = egress.bridge_name(net.docker_name)
        nid = api.create_network(
            net.docker_name,
            driver="bridge",
            ipam=ipam,
            options=options,
            enable_ipv6=subnet6 is not None,
            labels={LABEL: plan.lab},
        )["Id"]
        made.networks[net.docker_name] = nid

    each(network, plan.networks, workers)

    def node(n: NodePlan) -> None:
        first, *rest = n.interfaces
        first_net = plan.network(first.network).docker_name
        if host_config is not None:  # hoplab's own: caps, sysctls, names, limits, init
            hc = host_config(n)
        else:
            hc = api.create_host_config(network_mode=first_net, cap_add=["NET_ADMIN"], init=True)
        cid = api.create_container(
            image, name=n.container, host_config=hc, labels={LABEL: plan.lab}, detach=True
        )["Id"]
        nets = [plan.network(i.network).docker_name for i in n.interfaces]
        made.containers[cid] = nets
        for iface in rest:
            api.connect_container_to_network(cid, plan.network(iface.network).docker_name)
        with locks.holding(nets) if locks else contextlib.nullcontext():
            api.start(cid)

    # the order hoplab hands its nodes out in: neighbours on different networks
    each(node, spread(plan.nodes, lambda n: [i.network for i in n.interfaces]), workers)


def down(api: docker.APIClient, made: Made, locks: TimedLocks | None, workers: int) -> None:
    """Containers removed in parallel (holding their networks' locks), then the networks."""

    def container(cid: str) -> None:
        held = locks.holding(made.containers[cid]) if locks else contextlib.nullcontext()
        with held, contextlib.suppress(docker.errors.NotFound):
            api.remove_container(cid, force=True)

    each(container, spread(list(made.containers), made.containers.__getitem__), workers)
    made.containers.clear()

    def network(nid: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_network(nid)

    each(network, list(made.networks.values()), workers)
    made.networks.clear()


def cleanup(api: docker.APIClient, made: Made) -> None:
    """Whatever a failed round left: by id first, then anything carrying the floor's label."""
    for cid in made.containers:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(cid, force=True)
    for nid in made.networks.values():
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_network(nid)


def round_trip(
    client: docker.DockerClient,
    plan: Plan,
    image: str,
    endpoint_lock: bool = True,
    workers: int = WORKERS,
    host_config: Callable[[NodePlan], dict] | None = None,
) -> tuple[float, float, float, float]:
    """Seconds to bring the plan up and take it down again at the floor, and the seconds its
    workers spent waiting for endpoint locks in each (summed over workers)."""
    api = client.api
    locks = TimedLocks() if endpoint_lock else None
    made = Made()
    try:
        t0 = time.perf_counter()
        up(api, plan, image, made, locks, workers, host_config)
        t1 = time.perf_counter()
        up_wait = locks.waited if locks else 0.0
        down(api, made, locks, workers)
        t2 = time.perf_counter()
    finally:
        cleanup(api, made)
    down_wait = (locks.waited - up_wait) if locks else 0.0
    return t1 - t0, t2 - t1, up_wait, down_wait


def floor_name(tag: str) -> str:
    """A lab name for the floor's objects, unique to this process."""
    return f"floor{os.getpid()}{tag}"
