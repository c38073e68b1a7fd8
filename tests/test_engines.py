"""A room over two real Docker engines: the host's, and a second dockerd this test starts.

The second engine is a real `dockerd` with its own socket, data root, exec root (and with it its
own containerd), pid file and no default bridge. It runs with --iptables=false so that it never
rewrites the host's chains that the first engine and hoplab's egress rules own. Both engines share
this host's network namespace, so hoplab's egress rules (DOCKER-USER and INPUT DROPs matching the
hl- bridge prefix) cover the second engine's lab bridges too. What --iptables=false leaves out is
Docker's per-bridge `FORWARD -i br -o br -j ACCEPT`: with the host's FORWARD policy DROP and
br_netfilter on, frames bridged inside a lab network would be dropped, so the harness appends
that one ACCEPT for frames bridged within an hl- bridge (after the DOCKER-USER jump, so the DROPs
come first), and removes it afterwards.

The node image is copied from the first engine with docker-py (save, then load): no registry.
Everything the harness makes (the daemon, its containerd and shims, mounts, its directory, the
rule) is removed in a finally, and checked gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import hoplab
import pytest
from hoplab import exercises
from hoplab.checks import Status
from hoplab.engine.client import API_VERSION, connect
from hoplab.engine.image import IMAGE
from hoplab.engine.labs import Engine
from hoplab.exercises import runner
from hoplab.model import labels as L
from hoplab.workshop import room as workshop

from tests.conftest import ROOT, unique_lab_name

pytestmark = pytest.mark.docker
RULE = [
    "FORWARD",
    "-i",
    "hl+",
    "-m",
    "physdev",
    "--physdev-is-bridged",
    "-m",
    "comment",
    "--comment",
    "hoplab-second-engine-test",
    "-j",
    "ACCEPT",
]
CHECK = "ttl-and-traceroute"


class SecondEngine:
    """A dockerd in a temp dir: start, stop (by its pid file) and start again on the same data."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sock = root / "d.sock"
        self.url = f"unix://{self.sock}"
        self.pidfile = root / "d.pid"
        self.proc: subprocess.Popen | None = None
        (root / "cfg.json").write_text("{}")  # not the host's daemon.json (its data root)

    def start(self) -> docker.DockerClient:
        r = self.root
        self.proc = subprocess.Popen(
            [
                "dockerd",
                f"--host={self.url}",
                f"--data-root={r / 'data'}",
                f"--exec-root={r / 'exec'}",
                f"--pidfile={self.pidfile}",
                f"--config-file={r / 'cfg.json'}",
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
                "--storage-driver=fuse-overlayfs",
                "--shutdown-timeout=2",
            ],
            stdout=(r / "log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        client = docker.DockerClient(base_url=self.url, version=API_VERSION, timeout=120)
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, (r / "log").read_text()[-2000:]
            try:
                client.api.ping()
                return client
            except Exception:
                assert time.monotonic() < deadline, "the second dockerd did not answer in 60 s"
                time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM by the pid file, wait; SIGKILL if it will not go. Its containers die with it."""
        if self.proc is None:
            return
        with contextlib.suppress(FileNotFoundError, ValueError):
            pid = int(self.pidfile.read_text())
            assert pid == self.proc.pid
            os.kill(pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def strays(self) -> list[int]:
        """Processes still naming our directory (containerd, shims): ours to end, by pid."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if str(self.root).encode() in (entry / "cmdline").read_bytes():
                        found.append(int(entry.name))
        return found

    def mounts(self) -> list[str]:
        lines = Path("/proc/self/mounts").read_text().splitlines()
        return [line.split()[1] for line in lines if str(self.root) in line.split()[1]]


@pytest.fixture(scope="module")
def engines() -> Iterator[tuple[Engine, SecondEngine]]:
    """The host's engine and a second one holding a copy of the node image; all undone after."""
    first = Engine(connect())
    root = Path(tempfile.mkdtemp(prefix="hl2-", dir="/tmp"))  # short: a socket path has a limit
    second = SecondEngine(root)
    ruled = False
    try:
        client = second.start()
        image = first.api.get_image(IMAGE)
        client.api.load_image(image)  # streamed: save on one engine, load on the other
        assert client.images.get(IMAGE).id == first.client.images.get(IMAGE).id
        subprocess.run(["iptables", "-A", *RULE], check=True)
        ruled = True
        yield first, second
    finally:
        if ruled:
            subprocess.run(["iptables", "-D", *RULE], check=False)
        second.stop()
        for pid in second.strays():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for mount in sorted(second.mounts(), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(root, ignore_errors=True)
        left = second.strays(), second.mounts(), root.exists()
        rule = subprocess.run(["iptables", "-C", *RULE], capture_output=True).returncode
        assert left == ([], [], False) and rule != 0, f"the harness left {left}, rule={rule}"


def _hoplab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hoplab", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def room_objects(api: docker.APIClient, room: str) -> int:
    containers = api.containers(all=True, filters={"label": [f"{workshop.WORKSHOP}={room}"]})
    labs = {c["Labels"][L.LAB] for c in containers}
    return len(containers) + sum(len(api.networks(filters=L.lab_filter(lab))) for lab in labs)


def passes(engine: Engine, lab: str, artifacts: Path) -> bool:
    running = hoplab.attach(lab, engine=engine)
    (ex,) = exercises.select([CHECK])
    result = runner.run_one(running, ex, artifacts / lab)
    return result.status is Status.PASS


def test_a_room_spreads_over_two_engines_survives_losing_one_and_goes_down_on_both(
    engines, tmp_path
):
    first, second = engines
    name = unique_lab_name("sp")
    listing = tmp_path / "engines.txt"
    listing.write_text(f"local labs=3\n{second.url} labs=3  # the second engine\n")
    try:
        res = _hoplab("workshop", "up", "--participants", "6", "--workshop", name,
                      "--engines", str(listing))  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert "6 of 6 labs up" in res.stderr
        e2 = Engine(docker.DockerClient(base_url=second.url, version=API_VERSION, timeout=120))
        on_first = workshop.room_labs(first, name)
        on_second = workshop.room_labs(e2, name)
        assert len(on_second) == 3 and len(on_first) == 3, (on_first, on_second)
        for engine, labs, label in ((first, on_first, "local"), (e2, on_second, second.url)):
            for c in engine.api.containers(all=True, filters=L.lab_filter(labs[0])):
                assert c["Labels"][workshop.ENGINE] == label  # placement recorded on that engine
        assert passes(e2, on_second[0], tmp_path)  # the second engine's labs really route

        res = _hoplab("workshop", "status", "--workshop", name, "--engines", str(listing))
        assert res.returncode == 0, res.stdout + res.stderr
        assert all(lab in res.stdout for lab in on_first + on_second)

        second.stop()  # the machine goes away while the room is up
        res = _hoplab("workshop", "status", "--workshop", name, "--engines", str(listing))
        assert res.returncode == 1 and "unreachable" in res.stdout, res.stdout + res.stderr
        assert all(lab in res.stdout for lab in on_first)
        assert all(passes(first, lab, tmp_path) for lab in on_first)

        res = _hoplab("workshop", "down", "--workshop", name, "--engines", str(listing))
        assert res.returncode == 1 and "not emptied" in res.stderr, res.stderr
        assert "local: 3" in res.stderr and room_objects(first.api, name) == 0

        second.start()  # back: the same down now empties it too
        res = _hoplab("workshop", "down", "--workshop", name, "--engines", str(listing))
        assert res.returncode == 0, res.stderr
        assert room_objects(first.api, name) == 0 and room_objects(e2.api, name) == 0
    finally:
        workshop.down(first, name)
        if second.proc is not None:
            workshop.down(Engine(connect_to(second.url)), name)


def connect_to(url: str) -> docker.DockerClient:
    return docker.DockerClient(base_url=url, version=API_VERSION, timeout=120)
