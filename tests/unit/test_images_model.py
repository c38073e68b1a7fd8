"""Own-image keys in the model (issue 11): pure parsing, no Docker. The refusals with file, line
and key are in tests/corpus/own-*.yaml (loader) and tests/corpus/up/ (bring-up)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hoplab.errors import InputError
from hoplab.model.images import start_order, with_image_ids
from hoplab.model.load import load
from hoplab.model.plan import build_plan

BASE = """\
services:
  r1:
    x-hoplab: {role: router}
    networks: [lan1, lan2]
  web:
    image: example/web:1.2
    command: "serve --port 80 'two words'"
    entrypoint: ["/app"]
    environment: [MODE=ci, EMPTY=]
    working_dir: /srv
    user: "1000"
    cap_add: [NET_RAW]
    healthcheck: {test: ["CMD", "/app", "ping"], interval: 1m30s, timeout: 500ms, retries: 4}
    depends_on: [db, c]
    volumes: ["./conf/app.toml:/etc/app.toml:ro"]
    networks: [lan1]
  db:
    build: {context: ./db, dockerfile: Dockerfile}
    environment: {A: 1, B: true, C: null}
    networks: [lan2]
  c:
    networks: [lan2]
networks:
  lan1: {ipam: {config: [{subnet: 10.64.1.0/24}]}}
  lan2: {ipam: {config: [{subnet: 10.64.2.0/24}]}}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.toml").write_text("x = 1\n")
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "Dockerfile").write_text("FROM scratch\n")
    return tmp_path


def topo_of(folder: Path, text: str = BASE):
    path = folder / "compose.yaml"
    path.write_text(text)
    return load(path)


def test_every_key_is_read_into_the_app(folder: Path) -> None:
    topo = topo_of(folder)
    web, db = topo.node("web").app, topo.node("db").app
    assert topo.node("c").app is None and topo.node("r1").app is None
    assert web is not None and db is not None
    assert web.image == "example/web:1.2" and web.build is None
    assert web.command == ("serve", "--port", "80", "two words")  # split like a shell
    assert web.entrypoint == ("/app",) and web.working_dir == "/srv" and web.user == "1000"
    assert web.environment == (("MODE", "ci"), ("EMPTY", ""))
    assert web.caps == ("NET_RAW",)
    h = web.healthcheck
    assert h is not None and (h.interval, h.timeout, h.retries) == (90.0, 0.5, 4)
    assert [(d.service, d.condition) for d in web.depends_on] == [
        ("db", "service_started"),
        ("c", "service_started"),
    ]
    real = os.path.realpath(folder)
    assert web.mounts[0].source == f"{real}/conf/app.toml" and web.mounts[0].target == (
        "/etc/app.toml"
    )
    assert db.build is not None and db.build.context == f"{real}/db"
    assert db.environment == (("A", "1"), ("B", "true"), ("C", ""))


def test_start_order_puts_dependencies_first(folder: Path) -> None:
    topo = topo_of(folder)
    apps = {n.name: n.app for n in topo.nodes if n.app}
    assert start_order(apps) == ["db", "web"]  # web names db first, though db comes later


def test_image_ids_change_the_plan_digest(folder: Path) -> None:
    """A rebuilt image must make `up` rebuild the lab: the id is part of the plan."""
    topo = topo_of(folder)
    a = build_plan(with_image_ids(topo, {"web": "sha256:a", "db": "sha256:b"}))
    b = build_plan(with_image_ids(topo, {"web": "sha256:a", "db": "sha256:c"}))
    assert a.digest != b.digest
    assert a.node("web").app is not None and a.node("web").app.image_id == "sha256:a"


def test_a_symlinked_folder_inside_is_fine_and_one_leading_out_is_not(folder: Path) -> None:
    (folder / "inside").symlink_to(folder / "conf")
    text = BASE.replace("./conf/app.toml:", "./inside/app.toml:")
    assert topo_of(folder, text).node("web").app is not None
    (folder / "out").symlink_to("/etc")
    with pytest.raises(InputError) as info:
        topo_of(folder, BASE.replace("./conf/app.toml:", "./out/hostname:"))
    assert info.value.key == "services.web.volumes[0]" and "escapes" in info.value.message


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("interval: 1m30s", "interval: soon", "services.web.healthcheck.interval"),
        ("retries: 4", "retries: 0", "services.web.healthcheck.retries"),
        ("[MODE=ci, EMPTY=]", "[MODE]", "services.web.environment"),
        (":/etc/app.toml:ro", ":/etc/app.toml:rw", "services.web.volumes[0]"),
        ("dockerfile: Dockerfile", "dockerfile: ../x", "services.db.build.dockerfile"),
        ("depends_on: [db, c]", "depends_on: [nosuch]", "services.web.depends_on"),
    ],
)
def test_bad_values_name_their_key(folder: Path, old: str, new: str, key: str) -> None:
    assert old in BASE
    with pytest.raises(InputError) as info:
        topo_of(folder, BASE.replace(old, new))
    assert info.value.key == key and info.value.line > 0, str(info.value)


DEFAULT_NODES = """\
services:
  r1:
    x-hoplab: {role: router}
    networks: [lan1, lan2]
  plain:
    networks: [lan1]
  named:
    image: hoplab/node
    networks: [lan1]
  listener:
    command: "socat -u UDP-RECV:9000 CREATE:/tmp/got"
    environment: {MODE: ci}
    working_dir: /tmp
    user: "65534"
    healthcheck: {test: ["CMD", "ss", "-uln", "sport = :9000"]}
    networks: [lan2]
  tagged:
    image: hoplab/node:latest
    entrypoint: ["/bin/sh", "-c"]
    command: ["exec sleep infinity"]
    networks: [lan2]
networks:
  lan1: {ipam: {config: [{subnet: 10.64.1.0/24}]}}
  lan2: {ipam: {config: [{subnet: 10.64.2.0/24}]}}
"""


def test_a_default_node_with_a_program_runs_it_on_hoplab_node(folder: Path) -> None:
    """Issue 22: command & co. on a default node (no image, or image: hoplab/node) were refused
    with a hint ("add image:") that the second form already followed."""
    topo = topo_of(folder, DEFAULT_NODES)
    assert topo.node("plain").app is None and topo.node("named").app is None
    listener, tagged = topo.node("listener").app, topo.node("tagged").app
    assert listener is not None and tagged is not None
    assert listener.image == "hoplab/node" and listener.build is None
    assert listener.command == ("socat", "-u", "UDP-RECV:9000", "CREATE:/tmp/got")
    assert (listener.environment, listener.working_dir, listener.user) == (
        (("MODE", "ci"),),
        "/tmp",
        "65534",
    )
    assert listener.healthcheck is not None and listener.caps == ()
    assert tagged.image == "hoplab/node:latest"
    assert (tagged.entrypoint, tagged.command) == (("/bin/sh", "-c"), ("exec sleep infinity",))
    assert build_plan(topo).node("listener").app == listener  # the plan carries it to bring-up


@pytest.mark.parametrize("key", ["depends_on: [plain]", "volumes: ['./conf/app.toml:/a:ro']"])
def test_any_program_key_makes_a_default_node_a_pod(folder: Path, key: str) -> None:
    text = DEFAULT_NODES.replace("  named:\n", f"  named:\n    {key}\n")
    app = topo_of(folder, text).node("named").app
    assert app is not None and app.image == "hoplab/node" and app.command is None
