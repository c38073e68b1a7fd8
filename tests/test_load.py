"""Load: a 200-node lab comes up, passes its checks and goes down with zero leftovers.

Marked slow (deselect with `-m "not slow"`); `make test` and CI run it. The lab is a chain of 20
routers, each with a LAN of 9 hosts, so a ping from one end to the other crosses every router.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from hoplab import lifecycle
from hoplab.engine import fabric
from hoplab.model import labels as L
from hoplab.model.load import parse
from hoplab.runtime.lab import Lab
from tests.conftest import unique_lab_name

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROUTERS, HOSTS_PER_LAN = 20, 9


def chain(routers: int = ROUTERS, hosts: int = HOSTS_PER_LAN) -> str:
    """r0 - r1 - ... - r19 over /29 core links; each router has a /24 LAN of hosts."""
    services, networks = ["services:"], ["networks:"]
    for r in range(routers):
        links = [f"lan{r}"] + [f"core{c}" for c in (r - 1, r) if 0 <= c < routers - 1]
        services.append(f"  r{r}: {{x-hoplab: {{role: router}}, networks: [{', '.join(links)}]}}")
        services += [f"  h{r}x{h}: {{networks: [lan{r}]}}" for h in range(hosts)]
        networks.append(f"  lan{r}: {{ipam: {{config: [{{subnet: 10.152.{r}.0/24}}]}}}}")
        if r < routers - 1:
            core = f"10.153.{r // 32}.{r % 32 * 8}/29"
            networks.append(f"  core{r}: {{ipam: {{config: [{{subnet: {core}}}]}}}}")
    return "\n".join(services + networks) + "\n"


def test_a_200_node_lab_comes_up_routes_end_to_end_and_leaves_nothing(engine):
    topo = parse(chain(), "chain200.yaml")
    assert len(topo.nodes) == 200 and len(topo.routers) == ROUTERS
    name = unique_lab_name("h7l")
    quiet = lambda *a: None  # noqa: E731
    try:
        started = time.monotonic()
        lifecycle.up(engine, topo, name, quiet, quiet)
        up_s = time.monotonic() - started

        lab = Lab.attach(engine, name)  # refuses a lab with any node not running
        assert len(lab.nodes) == 200 and len(lab.state.networks) == 2 * ROUTERS - 1

        def missing_routes(node: str) -> list[str]:
            table = lab.node(node).run(["ip", "route"]).out
            return [r for r in lab.state_node(node).routes if r not in table]

        names = [n.name for n in lab.nodes]
        with ThreadPoolExecutor(8) as workers:
            missing = dict(zip(names, workers.map(missing_routes, names), strict=True))
        assert not any(missing.values()), {k: v for k, v in missing.items() if v}

        far = lab.address(f"h{ROUTERS - 1}x{HOSTS_PER_LAN - 1}")
        res = lab.node("h0x0").run(["ping", "-n", "-c1", "-W5", far])
        assert res.ok, res.out + res.err
        ttl = int(re.search(r"ttl=(\d+)", res.out).group(1))
        assert ttl == 64 - ROUTERS, res.out  # one less per router, all twenty of them
        path = [via for _, via in lab.path("h0x0", far)]
        assert len(path) == ROUTERS

        started = time.monotonic()
        removed = engine.down(name)
        down_s = time.monotonic() - started
        if engine.wiring == fabric.FABRIC:  # the nodes and their fabric; no Docker network
            assert removed == (200 + 1, 0), removed
        else:
            assert removed == (200, 2 * ROUTERS - 1)
        figures = {"nodes": 200, "networks": 2 * ROUTERS - 1, "up_s": round(up_s, 1)}
        print("load:", json.dumps(figures | {"down_s": round(down_s, 1), "ttl": ttl}))
    finally:
        engine.down(name)
    assert engine.api.containers(all=True, filters=L.lab_filter(name)) == []
    assert engine.api.networks(filters=L.lab_filter(name)) == []
