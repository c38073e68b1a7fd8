"""Removing labs: nodes in parallel, then networks in parallel, patiently; nothing unlabelled.

Once started, a teardown finishes: a Ctrl-C half-way would leave networks without nodes.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import docker
import docker.errors

from hoplab.engine.client import explain
from hoplab.engine.endpoints import EndpointLocks, spread
from hoplab.engine.parallel import parallel
from hoplab.engine.state import Progress, no_progress
from hoplab.errors import HoplabError
from hoplab.interrupts import sigint_deferred
from hoplab.model import labels as L

NETWORK_PATIENCE = 60.0
SWEEPS = 3  # list-and-remove rounds for one lab: a create landing after a list is taken next round


class Teardown:
    """Removes labelled objects; holds no lab state, only the engine's endpoint locks."""

    def __init__(self, api: docker.APIClient, endpoints: EndpointLocks, workers: int) -> None:
        self.api, self.endpoints, self.workers = api, endpoints, workers

    def down(self, lab: str | None, progress: Progress = no_progress) -> tuple[int, int]:
        """Remove one lab's objects (or every hoplab object); returns (containers, networks).

        Containers go first: a network cannot be removed while it still has endpoints. A round
        that removed something is followed by another list of that lab: a create in flight
        elsewhere (another `up` of the lab, or a call whose client gave up while the engine went
        on) can land just after a list, and would otherwise outlive a `down` that said it was done.
        `clean` (lab None) sweeps once, so that it never chases labs that other users start.
        """
        containers = networks = 0
        with sigint_deferred():
            for _ in range(SWEEPS if lab is not None else 1):
                removed = self.sweep(lab, progress)
                containers, networks = containers + removed[0], networks + removed[1]
                if removed == (0, 0):
                    break
        return containers, networks

    def sweep(self, lab: str | None, progress: Progress) -> tuple[int, int]:
        """One list-and-remove round: containers, then networks."""
        containers = spread(self.api.containers(all=True, filters=L.lab_filter(lab)), _networks)
        parallel(self.remove_container, containers, "removing nodes", progress, self.workers)
        networks = self.api.networks(filters=L.lab_filter(lab))
        parallel(
            lambda n: self.remove_network(n["Id"]),
            networks,
            "removing networks",
            progress,
            self.workers,
        )
        return len(containers), len(networks)

    def remove_container(self, container: dict[str, Any]) -> None:
        networks = _networks(container)
        try:
            with self.endpoints.holding(networks):
                self.api.remove_container(container["Id"], force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as err:
            if "already in progress" not in explain(err):
                raise

    def remove_network(self, nid: str, patience: float = NETWORK_PATIENCE) -> None:
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


def _networks(container: dict[str, Any]) -> list[str]:
    """The networks of a container list entry, as the endpoint locks name them."""
    networks = ((container.get("NetworkSettings") or {}).get("Networks") or {}).keys()
    return [n for n in networks if n != "none"]  # fabric-wired nodes: no endpoint to count
