"""A second Docker engine on this machine, for tests and benchmarks of rooms over engines.

A real `dockerd` with its own socket, data root, exec root (and with it its own containerd), pid
file and a default bridge of its own (never `--bridge=none`: a dockerd started so deletes the
host's docker0, the first engine's default bridge, and every later `docker build` with a RUN step
there fails). It runs with --iptables=false so that it never rewrites the host's
chains that the first engine and hoplab's egress rules own. Both engines share this host's
network namespace, so hoplab's egress rules (DOCKER-USER and INPUT DROPs matching the hl- bridge
prefix) cover the second engine's lab bridges too. What --iptables=false leaves out is Docker's
per-bridge `FORWARD -i br -o br -j ACCEPT`: with the host's FORWARD policy DROP and br_netfilter
on, frames bridged inside a lab network would be dropped, so the harness appends that one ACCEPT
for frames bridged within an hl- bridge (after the DOCKER-USER jump, so the DROPs come first).

`undo` removes everything it made (the daemon by its pid file, its containerd and shims, mounts,
its directory, the rule, its bridge) and returns what is left, which must be nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import docker

from hoplab.engine.client import API_VERSION

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
# The second engine's default bridge: a TEST-NET-1 address (RFC 5737) on a bridge with no ports,
# so nothing is ever sent from or to it; the first engine's pools never hand out that range.
BRIDGE_ADDR = "192.0.2.1/30"


def first_bridge(client: docker.DockerClient) -> str:
    """The host interface of an engine's default bridge network (docker0 unless configured)."""
    opts = client.api.inspect_network("bridge")["Options"]
    return opts.get("com.docker.network.bridge.name", "docker0")


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


class SecondEngine:
    """A dockerd in a temp dir: start, stop (by its pid file) and start again on the same data."""

    def __init__(self, root: Path | None = None, driver: str = "overlay2") -> None:
        # short: a unix socket path has a limit of 107 bytes
        self.root = root or Path(tempfile.mkdtemp(prefix="hl2-", dir="/tmp"))
        self.driver = driver
        self.ruled = False
        self.sock = self.root / "d.sock"
        self.url = f"unix://{self.sock}"
        self.pidfile = self.root / "d.pid"
        self.proc: subprocess.Popen | None = None
        self.bridge = f"hl2b{os.getpid() % 100000}"  # not hl-: the egress rules match hl-+

    def _make_bridge(self) -> None:
        if link_exists(self.bridge):
            return
        subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", BRIDGE_ADDR, "dev", self.bridge], check=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)

    def start(self) -> docker.DockerClient:
        r = self.root
        (r / "cfg.json").write_text("{}")  # not the host's daemon.json (its data root)
        if not self.ruled:
            subprocess.run(["iptables", "-A", *RULE], check=True)
            self.ruled = True
        self._make_bridge()
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
                f"--bridge={self.bridge}",
                f"--storage-driver={self.driver}",
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

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, version=API_VERSION, timeout=120)

    def copy_image(self, source: docker.DockerClient, image: str, tag: str | None = None) -> None:
        """Save on the source engine, load here, streamed: no registry.

        `image` is a name or, best, an id: on a shared source engine a name can move to another
        build while the copy runs. The copy is called `tag` here (default: `image`, a name).
        """
        client = self.client()
        wanted = source.images.get(image).id
        client.api.load_image(source.api.get_image(wanted))
        name = tag or image
        repo, sep, version = name.rpartition(":")
        if not sep or "/" in version:  # no tag in the name (a registry port is no tag)
            repo, version = name, "latest"
        client.api.tag(wanted, repo, version)
        assert client.images.get(name).id == wanted

    def undo(self) -> tuple[list[int], list[str], bool, bool, bool]:
        """Stop and remove everything; return (processes, mounts, directory, rule, bridge) left."""
        if self.ruled:
            subprocess.run(["iptables", "-D", *RULE], check=False)
        self.stop()
        for pid in self.strays():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for mount in sorted(self.mounts(), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        subprocess.run(["ip", "link", "del", self.bridge], check=False, capture_output=True)
        rule = subprocess.run(["iptables", "-C", *RULE], capture_output=True).returncode == 0
        return self.strays(), self.mounts(), self.root.exists(), rule, link_exists(self.bridge)
