"""Just enough of docker's low-level APIClient to run the real BringUp.create and Teardown.down
in memory, with every create "in flight" for a moment: unit tests only.

A create holds until the next list call (or HOLD seconds), which is the worst order for a
rollback: if a teardown lists while a create is still running, that create lands after the list
and leaks. The fake records every such list in `lists_during_creates`.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import docker.errors

from hoplab.engine.reconcile import READY

HOLD = 0.3


class _Logs:
    def __init__(self) -> None:
        self._chunks = iter([READY + b"\n"])

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        pass


class FakeAPI:
    """Containers and networks by id, each a Docker-shaped list entry with Labels."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.containers_: dict[str, dict] = {}
        self.networks_: dict[str, dict] = {}
        self.ids = itertools.count(1)
        self.creating = 0  # creates in flight
        self.entered = 0  # creates ever begun
        self.listed = threading.Event()
        self.lists_during_creates = 0

    # --- what the tests read -------------------------------------------------------------------

    def objects(self, lab: str) -> tuple[list[str], list[str]]:
        def of(table: dict[str, dict]) -> list[str]:
            return sorted(o["Name"] for o in table.values() if o["Labels"].get("hoplab.lab") == lab)

        with self.lock:
            return of(self.containers_), of(self.networks_)

    def wait_entered(self, count: int, timeout: float = 2.0) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: self.entered >= count, timeout)

    # --- creates: in flight until a list call, or HOLD seconds ---------------------------------

    def _create(self, table: dict[str, dict], name: str, labels: dict) -> str:
        with self.lock:
            if any(o["Name"] == name for o in table.values()):
                raise docker.errors.APIError(f"{name} already exists")
            self.creating += 1
            self.entered += 1
            self.lock.notify_all()
        self.listed.wait(HOLD)
        with self.lock:
            oid = f"id{next(self.ids)}"
            table[oid] = {"Id": oid, "Name": name, "Labels": dict(labels), "Networks": []}
            self.creating -= 1
            return oid

    def create_network(self, name: str, labels: dict, **_: object) -> dict:
        return {"Id": self._create(self.networks_, name, labels)}

    def create_container(self, image: str, name: str, labels: dict, **_: object) -> dict:
        return {"Id": self._create(self.containers_, name, labels)}

    def create_host_config(self, **kw: object) -> dict:
        return dict(kw)

    def create_networking_config(self, config: dict) -> dict:
        return dict(config)

    def create_endpoint_config(self, **kw: object) -> dict:
        return dict(kw)

    def connect_container_to_network(self, container: str, net: str, **_: object) -> None:
        pass

    def start(self, container: str) -> None:
        pass

    def logs(self, container: str, **_: object) -> _Logs:
        return _Logs()

    # --- lists and removals --------------------------------------------------------------------

    def _list(self, table: dict[str, dict], filters: dict) -> list[dict]:
        (wanted,) = filters["label"]
        key, _, value = wanted.partition("=")
        with self.lock:
            if self.creating:
                self.lists_during_creates += 1
            self.listed.set()
            return [
                dict(o)
                for o in table.values()
                if key in o["Labels"] and (not value or o["Labels"][key] == value)
            ]

    def networks(self, filters: dict) -> list[dict]:
        return self._list(self.networks_, filters)

    def containers(self, all: bool, filters: dict) -> list[dict]:  # noqa: A002 (docker's name)
        return self._list(self.containers_, filters)

    def remove_container(self, cid: str, **_: object) -> None:
        with self.lock:
            if self.containers_.pop(cid, None) is None:
                raise docker.errors.NotFound(cid)

    def remove_network(self, nid: str) -> None:
        with self.lock:
            if self.networks_.pop(nid, None) is None:
                raise docker.errors.NotFound(nid)

    def inspect_network(self, nid: str) -> dict:
        return {"Containers": {}}
