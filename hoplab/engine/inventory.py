"""Reading labs back from the engine: list calls whose labels hold all of a lab's state."""

from __future__ import annotations

import docker

from hoplab.engine.state import LabState, Taken, lab_state, labs_from, taken_from
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


def survey(api: docker.APIClient, lab: str) -> tuple[LabState, Taken]:
    """The lab's state and the subnets others hold, for planning: two list calls, not four.

    The unfiltered network list holds the lab's own networks too, so it serves both."""
    containers = api.containers(all=True, filters=L.lab_filter(lab))
    networks = api.networks()
    own = [n for n in networks if (n.get("Labels") or {}).get(L.LAB) == lab]
    return lab_state(lab, containers, own), taken_from(networks, lab)


def memory_usage(api: docker.APIClient, container: str) -> int:
    """Bytes the container uses: cgroup usage minus inactive page cache.

    Page cache is left out because the kernel reclaims it under pressure: what remains is what
    a node really costs the machine.
    """
    stats = api.stats(container, stream=False, one_shot=True)["memory_stats"]
    detail = stats.get("stats") or {}
    cache = detail.get("inactive_file", detail.get("cache", 0))
    return int(stats.get("usage", 0) - cache)
