"""Who owns which lab of a room: one list call, read from the labels every room node carries."""

from __future__ import annotations

import docker

from hoplab.model import labels as L


def owners(api: docker.APIClient, room: str) -> dict[str, str]:
    """participant -> lab for every lab labelled hoplab.workshop=<room> that names an owner."""
    found = api.containers(all=True, filters={"label": [L.LAB, f"{L.WORKSHOP}={room}"]})
    return {c["Labels"][L.OWNER]: c["Labels"][L.LAB] for c in found if c["Labels"].get(L.OWNER)}
