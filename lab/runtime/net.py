"""A running lab as small nouns: Lab, Node, Proc, Capture. Exercises and tests read like topology.

    lab = Lab.attach(engine, "hoplab")
    srv = lab.node("srv")
    with lab.capture("r1", "core") as cap:
        lab.node("alice").run(["ping", "-c1", lab.address("srv", "lan2")])
    cap.frames  # parsed with dpkt

Docker stays in the engine; this module only asks it to run, copy and fetch.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

from hoplab.engine.labs import Engine, LabState
from hoplab.errors import HoplabError, Unsupported
from hoplab.runtime import pcap

PROGRAMS = "/opt/hoplab"
IMPAIR_TAG = "hoplab-impair"
SCRATCH = "/tmp/hoplab"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    # subprocess.CompletedProcess names, so test code written for subprocess reads the same.
    @property
    def returncode(self) -> int:
        return self.code

    @property
    def stdout(self) -> str:
        return self.out

    @property
    def stderr(self) -> str:
        return self.err

    def json(self) -> Any:
        """The last JSON line a program printed: in-node programs report their evidence so."""
        for line in reversed(self.out.strip().splitlines()):
            with contextlib.suppress(ValueError):
                return json.loads(line)
        raise HoplabError(
            f"program printed no JSON (exit {self.code}): {(self.out + self.err).strip()[-500:]}"
        )


@dataclass(frozen=True)
class Iface:
    name: str
    mac: str
    address: str
    network: str


@dataclass
class Proc:
    """A background program in a node; stopped by the lab at teardown if not before."""

    node: Node
    pid: int
    log: str
    stopped: bool = False
    cmd: tuple[str, ...] = ()

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def output(self) -> str:
        return self.node.fetch(self.log).decode(errors="replace")

    def json(self) -> Any:
        return Result(0, self.output(), "").json()

    def wait(self, timeout: float = 10.0) -> bool:
        """Wait (bounded, inside the node) for the program to exit; True if it did."""
        script = (
            f"i=0; while kill -0 {self.pid} 2>/dev/null; do [ $i -ge {int(timeout * 100)} ] "
            "&& exit 1; sleep 0.01; i=$((i+1)); done"
        )
        return self.node.run(["sh", "-c", script], timeout=timeout + 5).ok

    def handshake(
        self,
        cmd: str = "true",
        *,
        wait_for: str = "",
        signal_before: bool = False,
        signal_after: bool = False,
        timeout: float = 6.0,
    ) -> Result:
        """In one exec: maybe SIGUSR1 the program, wait (bounded) for a marker in its output,
        run cmd, maybe SIGUSR1 it again.

        In-node programs pause on SIGUSR1 at the interesting moment, so the orchestrator can
        read socket tables while connections are really open, without a second round trip.
        """
        parts = [f"kill -USR1 {self.pid}"] if signal_before else []
        if wait_for:
            marker = shlex.quote(wait_for)
            parts.append(
                f"i=0; until grep -qF -- {marker} {self.log}; do "
                f"[ $i -ge {int(timeout * 100)} ] && break; sleep 0.01; i=$((i+1)); done"
            )
        parts.append(cmd)
        if signal_after:
            parts.append(f"kill -USR1 {self.pid} 2>/dev/null; true")
        return self.node.run(["sh", "-c", "; ".join(parts)], timeout=timeout + 5)

    def stop(self, wait: float = 5.0) -> None:
        """SIGTERM, then wait (bounded, in the node) for it to go, then SIGKILL."""
        if self.stopped:
            return
        self.stopped = True
        # spawn.py starts each program in a session of its own, so -PID reaches its children
        # too (dash's kill wants "-TERM -PID", without "--").
        script = (
            f"kill -TERM -{self.pid} 2>/dev/null; i=0; "
            f"while kill -0 {self.pid} 2>/dev/null && [ $i -lt {int(wait * 100)} ]; "
            f"do sleep 0.01; i=$((i+1)); done; kill -KILL -{self.pid} 2>/dev/null; true"
        )
        self.node.run(["sh", "-c", script], timeout=wait + 5)


class Node:
    def __init__(self, lab: Lab, name: str, container: str, role: str) -> None:
        self.lab, self.name, self.container, self.role = lab, name, container, role
        self._ifaces: dict[str, Iface] | None = None

    def __repr__(self) -> str:
        return f"Node({self.name})"

    def run(self, cmd: list[str] | str, timeout: float = 20) -> Result:
        """Run and wait, never longer than timeout: coreutils' timeout bounds it in the node."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        bounded = ["timeout", "-k", "2", str(timeout), *argv]
        code, out, err = self.lab.engine.run(self.container, bounded)
        return Result(code, out.decode(errors="replace"), err.decode(errors="replace"))

    def py(self, program: str, *args: Any, timeout: float = 20) -> Result:
        """Run one of the in-node programs from hosts/programs."""
        return self.run(["python3", f"{PROGRAMS}/{program}", *map(str, args)], timeout=timeout)

    def start(self, cmd: list[str], ready: str = "", timeout: float = 10) -> Proc:
        """Start cmd in the background; return once its output contains `ready`."""
        log = f"{SCRATCH}/proc-{next(self.lab._seq)}.log"
        res = self.py("spawn.py", log, ready, timeout, "--", *cmd, timeout=timeout + 5)
        info = res.json()
        if "pid" not in info:
            raise HoplabError(
                f"{self.name}: {shlex.join(cmd)} did not start: {info.get('error')}\n"
                f"{info.get('log', '')}"
            )
        proc = Proc(self, int(info["pid"]), log, cmd=tuple(cmd))
        self.lab._procs.append(proc)
        return proc

    def start_py(self, program: str, *args: Any, ready: str = "", timeout: float = 10) -> Proc:
        return self.start(
            ["python3", "-u", f"{PROGRAMS}/{program}", *map(str, args)], ready, timeout
        )

    def copy_in(self, src: str | Path | bytes, dest: str, mode: int = 0o755) -> None:
        """Copy a file (or bytes) to dest in the node, making dest's directory if it is missing."""
        data = src if isinstance(src, bytes) else Path(src).read_bytes()
        try:
            self.lab.engine.put_file(self.container, dest, data, mode)
        except HoplabError:
            parent = str(Path(dest).parent)
            if self.run(["test", "-d", parent]).ok or not self.run(["mkdir", "-p", parent]).ok:
                raise
            self.lab.engine.put_file(self.container, dest, data, mode)

    def fetch(self, path: str) -> bytes:
        return self.lab.engine.get_file(self.container, path)

    def interfaces(self) -> dict[str, Iface]:
        """Interface names and MACs are not predictable: read them once, at run time."""
        if self._ifaces is None:
            res = self.run(["ip", "-j", "addr", "show"])
            by_addr = {a: net for net, a in self.lab.state_node(self.name).addresses.items()}
            self._ifaces = {}
            for link in json.loads(res.out or "[]"):
                for info in link.get("addr_info", []):
                    net = by_addr.get(info.get("local", ""))
                    if net:
                        self._ifaces[net] = Iface(
                            link["ifname"], link.get("address", ""), info["local"], net
                        )
        return self._ifaces

    def iface(self, network: str) -> Iface:
        try:
            return self.interfaces()[network]
        except KeyError:
            raise HoplabError(f"{self.name} has no interface on {network}") from None

    def address(self, network: str | None = None) -> str:
        addrs = self.lab.state_node(self.name).addresses
        return addrs[network] if network else next(iter(addrs.values()))


@dataclass
class Impairment:
    """What Lab.impair put in place, and how: callers report the mechanism as evidence."""

    node: Node
    network: str
    iface: str
    mechanism: str = ""
    rules: list[list[str]] = field(default_factory=list)

    @property
    def netem(self) -> bool:
        return self.mechanism.startswith("netem")

    def drops(self) -> int:
        """Packets dropped so far, from the netem qdisc's or the iptables rules' counters."""
        if self.netem:
            res = self.node.run(["tc", "-j", "-s", "qdisc", "show", "dev", self.iface])
            return sum(q.get("drops", 0) for q in json.loads(res.out or "[]"))
        total = 0
        for chain in ("FORWARD", "OUTPUT"):
            res = self.node.run(["iptables", "-L", chain, "-v", "-x", "-n"])
            for line in res.out.splitlines():
                if IMPAIR_TAG in line:
                    total += int(line.split()[0])
        return total


@dataclass
class Capture:
    """Frames seen on one node's interface while the `with` block ran; saved as a .pcap."""

    node: Node
    network: str
    path: Path | None = None
    frames: list[pcap.Frame] = field(default_factory=list)


class Lab:
    """A running lab read back from the engine's labels, with helpers to act in it."""

    def __init__(self, engine: Engine, state: LabState, artifacts: Path | None = None) -> None:
        self.engine = engine
        self.state = state
        self.name = state.name
        self.artifacts = artifacts
        self._procs: list[Proc] = []
        self._seq = itertools.count()
        self._nodes = {n.name: Node(self, n.name, n.container, n.role) for n in state.nodes}

    @classmethod
    def attach(cls, engine: Engine, name: str, artifacts: Path | None = None) -> Lab:
        state = engine.state(name)
        if not state.running:
            raise HoplabError(f"lab {name!r} is not running", hint="bring it up: hoplab up")
        return cls(engine, state, artifacts)

    @property
    def nodes(self) -> list[Node]:
        return list(self._nodes.values())

    def node(self, name: str) -> Node:
        try:
            return self._nodes[name]
        except KeyError:
            raise HoplabError(
                f"lab {self.name!r} has no node {name!r}", hint=f"nodes: {', '.join(self._nodes)}"
            ) from None

    def state_node(self, name: str) -> Any:
        return next(n for n in self.state.nodes if n.name == name)

    def address(self, node: str, network: str | None = None) -> str:
        return self.node(node).address(network)

    def network_of(self, ip: str) -> str:
        """The lab network whose subnet holds ip."""
        for net, subnet in self.state.networks.items():
            if ip_address(ip) in ip_network(subnet):
                return net
        raise HoplabError(f"no network of lab {self.name!r} holds {ip}")

    def subnet(self, network: str) -> str:
        return self.state.networks[network]

    def path(self, src: str, dst_ip: str) -> list[tuple[Node, str]]:
        """Routers from src to dst_ip as (router, next-hop address), read from the route labels.

        This is what the lab was told to do; exercises compare it with what packets really did.
        """
        owner = {a: n.name for n in self.state.nodes for a in n.addresses.values()}
        hops: list[tuple[Node, str]] = []
        here, target = src, ip_address(dst_ip)
        for _ in range(32):
            node = self.state_node(here)
            if any(target in ip_network(self.subnet(net)) for net in node.addresses):
                return hops
            via = next(
                (r.split(" via ")[1] for r in node.routes if target in ip_network(r.split()[0])),
                None,
            )
            if via is None or via not in owner:
                raise HoplabError(f"{here} has no route to {dst_ip}")
            here = owner[via]
            hops.append((self.node(here), via))
        raise HoplabError(f"routing loop from {src} to {dst_ip}")

    def stop_all(self) -> None:
        """Stop every background program this Lab started, newest first."""
        while self._procs:
            with contextlib.suppress(HoplabError):
                self._procs.pop().stop()

    @contextlib.contextmanager
    def impair(
        self,
        node: str,
        network: str,
        loss: float = 0.0,
        every: int = 0,
        delay_ms: float = 0.0,
        match: list[str] | None = None,
    ) -> Iterator[Impairment]:
        """Impair what node sends out on network, and always undo it.

        `loss` and `delay_ms` use netem where the kernel has it. Without netem (or with `every`
        alone), loss falls back to iptables statistic on the packets `match` selects:
        deterministic, every `every`-th packet, when `every` is given, else random with `loss`.
        Delay without netem cannot be shown, so it raises Unsupported rather than pretending.
        """
        n = self.node(node)
        iface = n.iface(network).name
        netem = []
        if loss:
            netem += ["loss", f"{loss * 100:g}%"]
        if delay_ms:
            netem += ["delay", f"{delay_ms:g}ms"]
        imp = Impairment(n, network, iface)
        if netem:
            res = n.run(["tc", "qdisc", "add", "dev", iface, "root", "netem", *netem])
            if res.ok:
                imp.mechanism = f"netem {' '.join(netem)} on {node} {iface}"
            elif delay_ms:
                raise Unsupported(
                    f"cannot delay packets on {node}: {res.err.strip()}",
                    hint="delay and jitter need the kernel's sch_netem module",
                )
        if not imp.mechanism:
            if every:
                stat = ["--mode", "nth", "--every", str(every), "--packet", str(every - 1)]
            else:
                stat = ["--mode", "random", "--probability", f"{loss:g}"]
            for chain in ("FORWARD", "OUTPUT"):
                imp.rules.append(
                    [
                        chain,
                        "-o",
                        iface,
                        *(match or []),
                        "-m",
                        "statistic",
                        *stat,
                        "-m",
                        "comment",
                        "--comment",
                        IMPAIR_TAG,
                        "-j",
                        "DROP",
                    ]
                )
            imp.mechanism = f"iptables statistic {' '.join(stat)} on {node} {iface} (no netem)"
        try:
            for rule in imp.rules:
                res = n.run(["iptables", "-I", *rule])
                if not res.ok:
                    raise HoplabError(f"{node}: iptables failed: {res.err.strip()}")
            yield imp
        finally:
            if imp.rules:
                for rule in imp.rules:
                    n.run(["iptables", "-D", *rule])
            else:
                n.run(["tc", "qdisc", "del", "dev", iface, "root"])

    @contextlib.contextmanager
    def capture(
        self, where: str, network: str = "", bpf: str = "", label: str = ""
    ) -> Iterator[Capture]:
        """tcpdump on a node's interface; frames are parsed when the block ends.

        `where` is a node (then `network` says which interface), or a network alone: the
        capture then runs on a router on it (any node if it has none).
        """
        if not network:
            network = where
            on_it = [n for n in self.state.nodes if network in n.addresses]
            if network not in self.state.networks or not on_it:
                raise HoplabError(f"lab {self.name!r} has no network {network!r} with nodes")
            where = next((n for n in on_it if n.role == "router"), on_it[0]).name
        node = where
        n = self.node(node)
        iface = n.iface(network)
        cap = Capture(n, network)
        remote = f"{SCRATCH}/cap-{next(self._seq)}.pcap"
        cmd = [
            "tcpdump",
            "-i",
            iface.name,
            "-n",
            "-U",
            "--immediate-mode",
            "-s",
            "256",
            "-w",
            remote,
        ]
        proc = n.start([*cmd, *shlex.split(bpf)], ready="listening on")
        try:
            yield cap
        finally:
            proc.stop()
            with contextlib.suppress(ValueError):
                self._procs.remove(proc)
            data = n.fetch(remote)
            n.run(["rm", "-f", remote])
            cap.frames = pcap.parse(data)
            if self.artifacts is not None:
                self.artifacts.mkdir(parents=True, exist_ok=True)
                stem = label or f"{node}-{network}"
                cap.path = self.artifacts / f"{stem}.pcap"
                cap.path.write_bytes(data)
