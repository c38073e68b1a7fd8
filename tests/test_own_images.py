"""Own-image nodes (issue 11) on the real engine: pods routed before the first instruction, start
order and health, no capability unless asked, read-only binds only, and bad images or programs
refused with exit 2, file, line and key, leaving nothing behind.

The FROM scratch example (one static binary, two routers away, with and without loss) lives in
examples/test_ownimage.py, which `make test` runs too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from hoplab import lifecycle
from hoplab.engine.engine import Engine
from hoplab.model import labels as L
from hoplab.model.load import load
from hoplab.runtime.lab import Lab
from tests.conftest import ROOT, unique_lab_name
from tests.test_corpus import expectation

pytestmark = pytest.mark.docker

UP_CORPUS = sorted((Path(__file__).parent / "corpus" / "up").glob("*.yaml"))

PODS = """\
name: pods
services:
  r1:
    build: ./sleeper  # a router from an own image: its node still forwards
    x-hoplab: {role: router}
    networks: [lan1, lan2]
  a:
    build: ./sleeper
    # What the namespace holds at the program's first instruction, and the mounted file.
    command: ["sh", "-c", "ip -4 route; cat /etc/hosts; cat /etc/app.toml; touch /tmp/up;
      exec sleep infinity"]
    volumes: ["./conf/app.toml:/etc/app.toml:ro"]
    healthcheck: {test: ["CMD", "test", "-f", "/tmp/up"], interval: 100ms, retries: 50}
    networks: [lan1]
  b:
    build: ./sleeper
    cap_add: [NET_ADMIN]
    depends_on:
      a: {condition: service_healthy}
    networks: [lan2]
  c:
    networks: [lan2]
networks:
  lan1: {ipam: {config: [{subnet: 10.63.1.0/24}]}}
  lan2: {ipam: {config: [{subnet: 10.63.2.0/24}]}}
"""


def _up(path: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hoplab", "up", "-f", str(path), "--name", name],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_bad_images_and_programs_exit_2_naming_file_line_key_and_leave_nothing(engine):
    """Missing image, failing build, a healthcheck that never passes, a program that exits."""
    assert len(UP_CORPUS) >= 4

    def one(path: Path) -> str:
        expect = expectation(path)
        name = unique_lab_name("h11u")
        proc = _up(path, name)
        problems = []
        if proc.returncode != 2:
            problems.append(f"exit {proc.returncode}")
        if "Traceback" in proc.stderr + proc.stdout:
            problems.append("traceback")
        line = next((ln for ln in proc.stderr.splitlines() if str(path) in ln), "")
        if f": {expect.key}: " not in line or expect.fragment not in proc.stderr:
            problems.append(f"file, key {expect.key!r} or {expect.fragment!r} not named")
        if engine.api.containers(all=True, filters=L.lab_filter(name)) or engine.api.networks(
            filters=L.lab_filter(name)
        ):
            problems.append("objects left")
        return f"{path.name}: {', '.join(problems)}\n{proc.stderr}" if problems else ""

    with ThreadPoolExecutor(2) as workers:
        failures = [f for f in workers.map(one, UP_CORPUS) if f]
    assert not failures, "\n".join(failures)


def test_a_program_that_exits_shows_its_log_tail():
    path = next(p for p in UP_CORPUS if p.name == "exits-during-up.yaml")
    proc = _up(path, unique_lab_name("h11x"))
    assert proc.returncode == 2 and "boom: no config file" in proc.stderr, proc.stderr
    assert "exit code 3" in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def pods(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    folder = tmp_path_factory.mktemp("pods")
    shutil.copytree(Path(__file__).parent / "corpus" / "up" / "sleeper", folder / "sleeper")
    (folder / "conf").mkdir()
    (folder / "conf" / "app.toml").write_text("mode = 'ci'\n")
    (folder / "compose.yaml").write_text(PODS)
    name = unique_lab_name("h11p")
    try:
        lifecycle.up(engine, load(folder / "compose.yaml"), name, lambda *a: None, print)
        yield Lab.attach(engine, name)
    finally:
        engine.down(name)
        assert engine.state(name).exists is False


def _exec(lab: Lab, container: str, cmd: list[str]) -> tuple[int, str]:
    code, out, err = lab.engine.run(container, cmd)
    return code, (out + err).decode(errors="replace")


def test_the_namespace_holds_the_plan_at_the_first_instruction(pods: Lab) -> None:
    log = pods.node("a").logs() or ""
    lan2 = pods.subnet("lan2")
    assert f"{lan2} via {pods.address('r1', 'lan1')}" in log, log  # routed before it started
    assert "default" not in log, log  # and nothing else: no way out of the lab
    for name in ("r1", "b", "c"):
        assert f"\t{name}\n" in log or f" {name}\n" in log, (name, log)  # /etc/hosts names
    assert "mode = 'ci'" in log, log  # the read-only bind mount is in place


def test_depends_on_healthy_starts_b_after_a_passed(pods: Lab) -> None:
    api = pods.engine.api
    a = api.inspect_container(f"{pods.name}-a-app")["State"]
    b = api.inspect_container(f"{pods.name}-b-app")["State"]
    passed = [h for h in a["Health"]["Log"] if h["ExitCode"] == 0]
    assert passed, a["Health"]

    def t(s: str) -> datetime:
        return datetime.fromisoformat(s[:26].rstrip("Z") + "+00:00")

    assert t(passed[0]["End"]) <= t(b["StartedAt"]), (passed[0], b["StartedAt"])


def test_own_containers_get_no_capability_unless_asked(pods: Lab) -> None:
    """The attack: root in the own image tries to reroute the lab's namespace, and to write the
    bind-mounted file. Only b, which asked for NET_ADMIN, may change routes."""
    spare = pods.subnet("lan1").rsplit(".", 1)[0] + ".0/28"
    code, out = _exec(pods, f"{pods.name}-a-app", ["ip", "route", "add", spare, "dev", "eth0"])
    assert code != 0 and "not permitted" in out, out
    code, out = _exec(pods, f"{pods.name}-a-app", ["sh", "-c", "echo x > /etc/app.toml"])
    assert code != 0 and "Read-only" in out, out
    code, out = _exec(pods, f"{pods.name}-b-app", ["ip", "-4", "addr", "show"])
    assert code == 0 and pods.address("b", "lan2") in out, out  # b shares its node's namespace
    info = pods.engine.api.inspect_container(f"{pods.name}-a-app")["HostConfig"]
    assert not info["Privileged"] and not info["CapAdd"], info["CapAdd"]
    assert info["ReadonlyRootfs"] is False and info["NetworkMode"].startswith("container:")


def test_status_exec_and_a_second_up(pods: Lab) -> None:
    """exec reaches a's program container (its image, FROM hoplab/node, has ss; tools an image
    lacks run in the node's own container: tests/test_node_command.py); status reads the
    program's state; an unchanged file leaves the lab alone."""
    state = pods.engine.state(pods.name)
    apps = {n.name: n.app for n in state.nodes}
    assert apps == {"r1": "running", "a": "running", "b": "running", "c": ""}, apps
    res = pods.node("a").run(["ss", "-tuan"])
    assert res.ok and res.container == f"{pods.name}-a-app" and not res.note, res
    src = Path(state.source)
    again = lifecycle.up(pods.engine, load(src), pods.name, lambda *a: None, print)
    assert again.report.action == "unchanged"


def test_nodes_resolve_from_hosts_only_while_the_image_keeps_dns_for_builds(pods: Lab) -> None:
    """The entrypoint sets `hosts: files` when a node starts; hoplab/node itself keeps Debian's
    default, so a build FROM hoplab/node can reach the mirror in its RUN steps (the example's
    build stage installs gcc that way). a's container is hoplab/node without the entrypoint."""
    res = pods.node("c").run(["grep", "^hosts:", "/etc/nsswitch.conf"])
    assert res.stdout.split() == ["hosts:", "files"], res.stdout
    code, out = _exec(pods, f"{pods.name}-a-app", ["grep", "^hosts:", "/etc/nsswitch.conf"])
    assert code == 0 and "dns" in out.split(), out
    code, out = _exec(pods, f"{pods.name}-a-app", ["cat", "/etc/resolv.conf"])
    assert "nameserver 127.0.0.1" in out, out  # and that asks nobody outside the lab


def test_an_own_image_router_forwards_and_an_own_image_host_can_be_impaired(pods: Lab) -> None:
    """c -> r1 (own image) -> a (own image): ping crosses the router (TTL 63 back); loss on a's
    interface is put in place from a's node container, as on any node."""
    a = pods.address("a", "lan1")
    res = pods.node("c").run(["ping", "-n", "-c", "4", "-i", "0.2", "-W", "2", a])
    assert res.ok and "ttl=63" in res.stdout and " 0% packet loss" in res.stdout, res.stdout
    with pods.impair("a", "lan1", every=2) as loss:
        res = pods.node("c").run(["ping", "-n", "-c", "4", "-i", "0.2", "-W", "1", a])
        dropped = loss.drops()
    assert dropped == 2 and "50% packet loss" in res.stdout, (loss.mechanism, res.stdout)
