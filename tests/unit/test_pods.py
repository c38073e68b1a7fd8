"""When own-image containers start (engine/pods.py), without Docker: a recording stand-in for the
few APIClient calls pods makes. Order is what matters here; that the namespace really holds the
plan is proved on the real engine in tests/test_own_images.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from hoplab.engine.pods import Pods
from hoplab.engine.state import no_progress
from hoplab.errors import InputError
from hoplab.model.images import with_image_ids
from hoplab.model.load import load
from hoplab.model.plan import build_plan

TOPO = """\
services:
  r1: {x-hoplab: {role: router}, networks: [lan1, lan2]}
  db:
    image: example/db
    healthcheck: {test: ["CMD", "probe"], interval: 10ms}
    networks: [lan1]
  web:
    image: example/web
    depends_on: {db: {condition: service_healthy}}
    networks: [lan2]
  c: {networks: [lan2]}
networks:
  lan1: {ipam: {config: [{subnet: 10.65.1.0/24}]}}
  lan2: {ipam: {config: [{subnet: 10.65.2.0/24}]}}
"""


class FakeAPI:
    """create/start/inspect/logs of containers, recorded in order; health turns on a flag."""

    def __init__(self, healthy: bool = True, exits: frozenset[str] = frozenset()) -> None:
        self.events: list[str] = []
        self.healthy, self.exits = healthy, exits
        self.lock = threading.Lock()

    def create_host_config(self, **kw: object) -> dict:
        return dict(kw)

    def create_container(self, image: str, name: str, **kw: object) -> dict:
        with self.lock:
            self.events.append(f"create {name}")
        return {"Id": name}

    def start(self, name: str) -> None:
        with self.lock:
            self.events.append(f"start {name}")

    def inspect_container(self, name: str) -> dict:
        running = not any(name.endswith(f"-{e}-app") for e in self.exits)
        health = {"Status": "healthy" if self.healthy else "unhealthy", "Log": [{"Output": "no"}]}
        return {"State": {"Running": running, "ExitCode": 0 if running else 3, "Health": health}}

    def logs(self, name: str, tail: int = 20) -> bytes:
        return b"a log line\n"


def plan_of(tmp_path: Path):
    path = tmp_path / "compose.yaml"
    path.write_text(TOPO)
    topo = load(path)
    return build_plan(with_image_ids(topo, {"db": "sha256:d", "web": "sha256:w"}), "t")


def run(api: FakeAPI, plan, ready: list[str]) -> dict:
    start = Pods(api, {}).starter(plan, {}, None)
    start.begin(no_progress)
    for name in ready:
        start.node_ready(name, None)
    return start.finish(failed=False)


def test_nothing_starts_before_its_node_and_every_router_are_ready(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    api = FakeAPI()
    start = Pods(api, {}).starter(plan, {}, None)
    start.begin(no_progress)
    start.node_ready("db", None)
    start.node_ready("web", None)
    time.sleep(0.2)  # time enough to start, if the gate let it
    assert api.events == []  # r1 is not ready yet: nothing may send
    start.node_ready("r1", None)
    start.finish(failed=False)
    assert api.events == [
        "create t-db-app",
        "start t-db-app",
        "create t-web-app",  # only after db is healthy
        "start t-web-app",
    ]


def test_a_failed_lab_stops_the_waiting_containers(tmp_path: Path) -> None:
    api = FakeAPI()
    start = Pods(api, {}).starter(plan_of(tmp_path), {}, None)
    start.begin(no_progress)
    assert start.finish(failed=True) == {}  # returns at once: no node ever got ready
    assert api.events == []


def test_a_healthcheck_that_fails_names_the_service_and_web_never_starts(tmp_path: Path) -> None:
    api = FakeAPI(healthy=False)
    with pytest.raises(InputError) as info:
        run(api, plan_of(tmp_path), ["r1", "db", "web", "c"])
    assert info.value.key == "services.db.healthcheck" and "never passed" in info.value.message
    assert "a log line" in info.value.message
    assert not any("web" in e for e in api.events), api.events


def test_a_container_that_exits_is_named(tmp_path: Path) -> None:
    api = FakeAPI(exits=frozenset({"web"}))
    with pytest.raises(InputError) as info:
        run(api, plan_of(tmp_path), ["r1", "db", "web", "c"])
    assert info.value.key == "services.web" and "exited during up" in info.value.message
