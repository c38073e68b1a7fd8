"""The node image: content hash (pure), and build, cache and tools against the real engine."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

from hoplab.engine import image

HOSTS = Path(__file__).resolve().parent.parent / "hosts"
TOOLS = [
    "python3",
    "ip",
    "iptables",
    "ping",
    "traceroute",
    "tcpdump",
    "nc",
    "ps",
    "ethtool",
    "conntrack",
]
TEST_LAB = "test-image"


# --- content hash: no Docker ----------------------------------------------------------------------


@pytest.fixture
def hosts_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "hosts"
    shutil.copytree(HOSTS, dst, symlinks=True)
    return dst


def test_hash_is_stable_and_independent_of_location(hosts_copy: Path) -> None:
    assert image.content_hash(hosts_copy) == image.content_hash(HOSTS)
    assert image.content_hash(hosts_copy).startswith("sha256:")


def test_hash_changes_when_a_file_changes(hosts_copy: Path) -> None:
    before = image.content_hash(hosts_copy)
    readme = hosts_copy / "programs" / "README.md"
    readme.write_text(readme.read_text() + "one more line\n")
    assert image.content_hash(hosts_copy) != before


def test_hash_changes_when_a_file_is_added_or_renamed(hosts_copy: Path) -> None:
    before = image.content_hash(hosts_copy)
    extra = hosts_copy / "programs" / "extra.py"
    extra.write_text("print('{}')\n")
    added = image.content_hash(hosts_copy)
    assert added != before
    extra.rename(hosts_copy / "programs" / "other.py")
    assert image.content_hash(hosts_copy) not in (before, added)


def test_hash_changes_with_the_exec_bit(hosts_copy: Path) -> None:
    entry = hosts_copy / "entrypoint.sh"
    before = image.content_hash(hosts_copy)
    os.chmod(entry, 0o644)
    assert image.content_hash(hosts_copy) != before


def test_hash_ignores_python_caches(hosts_copy: Path) -> None:
    before = image.content_hash(hosts_copy)
    cache = hosts_copy / "programs" / "__pycache__"
    cache.mkdir()
    (cache / "x.cpython-311.pyc").write_bytes(b"\0\1\2")
    assert image.content_hash(hosts_copy) == before


# --- real engine ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    docker = pytest.importorskip("docker")
    try:
        c = docker.from_env()
        c.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker Engine: {exc}")
    yield c
    left = c.containers.list(all=True, filters={"label": f"hoplab.lab={TEST_LAB}"})
    for cont in left:
        cont.remove(force=True)
    c.close()
    assert not left, f"tests left containers behind: {[x.name for x in left]}"


class BuildSpy:
    """Counts calls to client.api.build while delegating to the real one."""

    def __init__(self, api) -> None:
        self.real = api.build
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.real(*args, **kwargs)


@pytest.fixture
def node_id(client) -> str:
    """The node image's id. The first call on a bare engine builds it, bootstrapping the base with
    mmdebstrap (one or two minutes); later calls take the cached path."""
    return image.ensure_image(client, HOSTS, print)


@pytest.mark.docker
def test_ensure_image_builds_labelled_image(client, node_id: str) -> None:
    info = client.api.inspect_image(image.IMAGE)
    assert info["Id"] == node_id
    labels = info["Config"]["Labels"]
    assert labels[image.HASH_LABEL] == image.content_hash(HOSTS)
    assert "hoplab.lab" not in labels  # that label is for lab containers and networks only
    assert info["Config"]["Entrypoint"] == ["/usr/local/bin/hoplab-entrypoint"]


@pytest.mark.docker
def test_second_call_is_cached_and_does_not_build(client, node_id: str, monkeypatch) -> None:
    created = client.api.inspect_image(image.IMAGE)["Created"]
    spy = BuildSpy(client.api)
    monkeypatch.setattr(client.api, "build", spy)
    said: list[str] = []
    assert image.ensure_image(client, HOSTS, said.append) == node_id
    assert spy.calls == 0
    assert said == []
    assert client.api.inspect_image(image.IMAGE)["Created"] == created


@pytest.mark.docker
def test_image_has_all_tools(client, node_id: str) -> None:
    # `command -v a b c` in dash reports only the first name and exits 0, so ask for each one.
    script = "for c in " + " ".join(TOOLS) + '; do command -v "$c" || exit 1; done'
    out = client.containers.run(
        node_id,
        entrypoint=["sh", "-c", script],
        remove=True,
        network_mode="none",
        labels={"hoplab.lab": TEST_LAB},
    )
    found = out.decode().split()
    assert [os.path.basename(p) for p in found] == TOOLS, out.decode()


@pytest.mark.docker
def test_program_edit_rebuilds_only_the_last_layer(
    client, node_id: str, hosts_copy: Path, monkeypatch
) -> None:
    """An edited hosts/programs rebuilds on top of the cached apt layer.

    Built under its own tag, so that labs running meanwhile keep using hoplab/node:latest.
    """
    tag = "hoplab/node:test-edit"
    (hosts_copy / "programs" / "extra.py").write_text("print('{}')\n")
    spy = BuildSpy(client.api)
    monkeypatch.setattr(client.api, "build", spy)
    try:
        edited = image.ensure_image(client, hosts_copy, lambda _: None, tag=tag)
        assert spy.calls == 1 and edited != node_id
        assert image.ensure_image(client, hosts_copy, lambda _: None, tag=tag) == edited
        assert spy.calls == 1
        old_layers = client.api.inspect_image(node_id)["RootFS"]["Layers"]
        new_layers = client.api.inspect_image(edited)["RootFS"]["Layers"]
        assert len(new_layers) == len(old_layers)
        assert new_layers[:-1] == old_layers[:-1] and new_layers[-1] != old_layers[-1]
    finally:
        with contextlib.suppress(Exception):
            client.api.remove_image(tag)
    assert client.api.inspect_image(image.IMAGE)["Id"] == node_id
