"""Reading labs back from the engine: list calls whose labels hold all of a lab's state."""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Network, IPv6Network

import docker
from hoplab.engine.state import LabState, lab_state, labs_from
from hoplab.model import labels as L


def state(api: docker.APIClient, lab: str) -> LabState:
    """Two list calls rebuild the whole lab: labels carry roles, routes and the plan digest."""
    containers = api.containers(all=True, filters=L.lab_filter(lab))
    networks = api.networks(filters=L.lab_filter(lab))
    return lab_state(lab, containers, networks)


def labs(api: docker.APIClient) -> list[LabState]:
    containers = api.containers(all=True, filters=L.lab_filter(None))
    networks = api.networks(filters=L.lab_filter(None))
    return labs_from(containers, networks)


def labs_labelled(api: docker.APIClient, key: str, value: str) -> list[str]:
    """Names of the labs whose nodes carry key=value (e.g. one workshop's room), sorted."""
    found = api.containers(all=True, filters={"label": [L.LAB, f"{key}={value}"]})
    return sorted({c["Labels"][L.LAB] for c in found})


def taken_subnets(api: docker.APIClient, exclude_lab: str) -> list[IPv4Network]:
    """Subnets of every network on the engine except this lab's own, for the planner."""
    out = []
    for net in api.networks():
        if (net.get("Labels") or {}).get(L.LAB) == exclude_lab:
            continue
        for cfg in (net.get("IPAM") or {}).get("Config") or []:
            with contextlib.suppress(ValueError, KeyError):
                out.append(IPv4Network(cfg["Subnet"]))
    return out


def taken_subnets6(api: docker.APIClient, exclude_lab: str) -> list[IPv6Network]:
    """IPv6 subnets of every network on the engine except this lab's own (Docker refuses
    overlapping pools in either family)."""
    out = []
    for net in api.networks():
        if (net.get("Labels") or {}).get(L.LAB) == exclude_lab:
            continue
        for cfg in (net.get("IPAM") or {}).get("Config") or []:
            with contextlib.suppress(ValueError, KeyError):
                out.append(IPv6Network(cfg["Subnet"]))
    return out


def memory_usage(api: docker.APIClient, container: str) -> int:
    """Bytes the container uses: cgroup usage minus inactive page cache.

    Page cache is left out because the kernel reclaims it under pressure: what remains is what
    a node really costs the machine.
    """
    stats = api.stats(container, stream=False, one_shot=True)["memory_stats"]
    detail = stats.get("stats") or {}
    cache = detail.get("inactive_file", detail.get("cache", 0))
    return int(stats.get("usage", 0) - cache)
