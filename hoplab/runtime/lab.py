"""A running lab as small nouns: Lab, Node, Proc, Capture. Exercises and tests read like topology.

    lab = Lab.attach(engine, "hoplab")
    srv = lab.node("srv")
    with lab.capture("r1", "core") as cap:
        lab.node("alice").run(["ping", "-c1", lab.address("srv", "lan2")])
    cap.frames  # parsed with dpkt

Docker stays in the engine; this module only asks it to run, copy and fetch.

An own-image node has two containers on one network namespace: its own (hoplab/node, with
hoplab's tools and NET_ADMIN/NET_RAW) and its program's. `Node.run` and `Node.start` go where the
program lives, so its files and processes are there to see; a call whose tool its image lacks runs
in the node's own container instead, and says so (`Result.note`, `Node.notes`, the log). hoplab's
own evidence gathering (its in-node programs, captures, impairments, and whatever an exercise or a
grading runs inside `Lab.evidence()`) keeps to the node's own container, whose tools it needs.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import shlex
import socket
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TextIO

from hoplab.engine.interface import EngineAPI
from hoplab.engine.reconcile import READY
from hoplab.engine.state import LabState, Progress, no_progress
from hoplab.errors import HoplabError, Overdue, Unsupported
from hoplab.interrupts import sigint_deferred
from hoplab.runtime.needs import route_path

if TYPE_CHECKING:  # dpkt loads with the first capture, not with every lab
    from hoplab.engine.state import UpReport
    from hoplab.model.plan import Plan
    from hoplab.model.topology import Role
    from hoplab.runtime import pcap

PROGRAMS = "/opt/hoplab"
IMPAIR_TAG = "hoplab-impair"
SCRATCH = "/tmp/hoplab"
# Every exec hoplab makes in a node carries this variable (host/pid/start/tag of the Lab that made
# it), and every process it starts inherits it: so what hoplab started is found from the node's
# /proc alone, even after the CLI crashed before it learnt a pid.
RUN_ENV = "HOPLAB_RUN"
NOBODY = 65534  # only submitted participant code runs as nobody in a node
log = logging.getLogger(__name__)
SLACK = 10.0  # seconds an exec may run past its in-node timeout before the engine gives up on it
SCAN_DEADLINE = 5.0  # seconds a reap's scan of one node may take (it needs well under one)

# Runs in the node as root (python3 -c), never marked itself. argv: MODE RUN...
#   kill RUN... SIGKILL the processes marked with one of RUN, until a few scans in a row find none
#               (an exec that was in flight when we were interrupted may start its program late)
#   reap RUN... the same, and every process of nobody: kill(-1) as nobody reaches all of them at
#               once, whatever they fork, which a loop over pids cannot promise
#   reap-files RUN...  reap, then delete what nobody left in the world-writable directories, so
#               nothing a participant wrote survives into the next grading (or fills the disk)
_SCAN = r"""
import json, os, signal, sys, time
mode, runs = sys.argv[1], set(sys.argv[2:])
mine = {os.getpid(), os.getppid()}
def scan():
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) in mine:
            continue
        try:
            uid = os.stat("/proc/" + pid).st_uid
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            try:
                with open("/proc/%s/environ" % pid, "rb") as f:
                    env = f.read().split(b"\0")
            except PermissionError:  # nobody's environ is closed to root without SYS_PTRACE
                env = []
        except OSError:
            continue
        run = next((e[len(b"RUN_ENV="):].decode() for e in env if e.startswith(b"RUN_ENV=")), "")
        if cmd and (run or uid == NOBODY):
            yield {"pid": int(pid), "uid": uid, "run": run, "cmd": cmd[:300]}
def nobody_kill_all():
    for _ in range(3):
        child = os.fork()
        if child == 0:
            try:
                os.setgid(NOBODY); os.setuid(NOBODY); os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(child, 0)
killed, quiet = {}, 0
for _ in range(40):
    hit = [p for p in scan() if p["run"] in runs or (mode != "kill" and p["uid"] == NOBODY)]
    if any(p["uid"] == NOBODY for p in hit):
        nobody_kill_all()
    for p in hit:
        killed.setdefault(p["pid"], p)
        try:
            os.kill(p["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
    quiet = 0 if hit else quiet + 1
    if quiet >= 3:
        break
    time.sleep(0.05)
if mode == "reap-files":
    for top in ("/tmp", "/var/tmp", "/dev/shm"):
        for here, dirs, files in os.walk(top, topdown=False):
            for name in files + dirs:
                path = os.path.join(here, name)
                try:
                    if os.lstat(path).st_uid == NOBODY:
                        os.rmdir(path) if name in dirs else os.unlink(path)
                except OSError:
                    pass
for p in killed.values():
    print(json.dumps(p))
""".replace("RUN_ENV", RUN_ENV).replace("NOBODY", str(NOBODY))


def _start_time(pid: int) -> str:
    """A process's start time in clock ticks since boot: with the pid, it names one process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def new_run_id() -> str:
    """host/pid/start/tag: enough to tell, from the host, whether the run is still alive."""
    pid = os.getpid()
    return f"{socket.gethostname()}/{pid}/{_start_time(pid)}/{uuid.uuid4().hex[:8]}"


def run_alive(run: str) -> bool:
    """Is the process that owns this run id still alive? Another host's runs count as gone: a
    lab belongs to one user, and a run from elsewhere left in it is a stray."""
    try:
        host, pid, start, _ = run.split("/")
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    if int(pid) == os.getpid():
        return True
    return _start_time(int(pid)) == start and start != "0"


@dataclass(frozen=True)
class Left:
    """A program hoplab started (or a participant's, run as nobody) still running in a node."""

    node: str
    pid: int  # as the host sees it when listed (docker top), as the node does when killed
    cmd: str
    run: str  # the run id that started it; '' for a participant program (nobody)
    user: str

    @property
    def owner_alive(self) -> bool:
        return bool(self.run) and run_alive(self.run)

    def describe(self) -> str:
        return f"{self.node}: {self.cmd} (pid {self.pid}, {self.user})"


def _scan(engine: EngineAPI, container: str, node: str, mode: str, runs: list[str]) -> list[Left]:
    """One exec of _SCAN, deliberately not through Node.run: the scanner must carry no mark."""
    code, out, err = engine.run(container, ["python3", "-c", _SCAN, mode, *runs], SCAN_DEADLINE)
    if code != 0:
        raise HoplabError(f"cannot read the processes of {node}: {err.decode(errors='replace')}")
    found = []
    for line in out.decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError, KeyError):
            p = json.loads(line)
            user = "nobody" if p["uid"] == NOBODY else ("root" if p["uid"] == 0 else str(p["uid"]))
            found.append(Left(node, int(p["pid"]), p["cmd"], p["run"], user))
    return found


def _each_node(fn: Any, nodes: list[Any]) -> list[Any]:
    """fn over nodes in parallel (one exec each costs ~55 ms; seven in a row would add up)."""
    if not nodes:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(nodes))) as workers:
        return list(workers.map(fn, nodes))


def _listed(engine: EngineAPI, container: str, node: str) -> list[Left]:
    """Marked and nobody's processes of one node, from the host side (no exec; pids are the
    host's). The docker-init and entrypoint processes carry no mark."""
    found = []
    for pid, uid, run, cmd in engine.processes(container, RUN_ENV):
        if run or uid == NOBODY:
            user = "nobody" if uid == NOBODY else ("root" if uid == 0 else str(uid))
            found.append(Left(node, pid, cmd[:300], run, user))
    return found


def left_running(engine: EngineAPI, state: LabState) -> list[Left]:
    """Programs hoplab started in the lab's running nodes that still run, and participant code.

    For `hoplab status`: one `top` per running node, in parallel; nothing is changed.
    """
    nodes = [n for n in state.nodes if n.state == "running"]
    found = _each_node(lambda n: _listed(engine, n.container, n.name), nodes)
    return [left for per_node in found for left in per_node]


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str
    container: str = ""  # where it ran: the node's program container, or its own
    note: str = ""  # why it did not run in the node's program container, when it did not

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


# A shell function: is pid running? A zombie is not: in a program's container PID 1 is the
# program, which reaps nobody's children, so what hoplab started and stopped stays a zombie there.
_ALIVE = "alive() { kill -0 $1 2>/dev/null && ! grep -q ') Z ' /proc/$1/stat 2>/dev/null; }; "


@dataclass
class Proc:
    """A background program in a node; stopped by the lab at teardown if not before."""

    node: Node
    pid: int
    log: str
    stopped: bool = False
    cmd: tuple[str, ...] = ()
    container: str = ""  # the one it runs in (its pid is that container's); "": the node's own

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def output(self) -> str:
        return self.node.fetch(self.log, container=self.container).decode(errors="replace")

    def _run(self, script: str, timeout: float) -> Result:
        """A shell line where the program runs, so that its pid means that process."""
        return self.node.run_in(
            self.container or self.node.container, ["sh", "-c", script], timeout
        )

    def json(self) -> Any:
        return Result(0, self.output(), "").json()

    def wait(self, timeout: float = 10.0) -> bool:
        """Wait (bounded, inside the node) for the program to exit; True if it did."""
        script = (
            f"{_ALIVE}i=0; while alive {self.pid}; do [ $i -ge {int(timeout * 100)} ] "
            "&& exit 1; sleep 0.01; i=$((i+1)); done"
        )
        return self._run(script, timeout + 5).ok

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
        return self._run("; ".join(parts), timeout + 5)

    def stop(self, wait: float = 5.0) -> bool:
        """SIGTERM, then wait (bounded, in the node) for it to go, then SIGKILL.

        Returns whether it was still running (for an honest "what was stopped").
        """
        if self.stopped:
            return False
        self.stopped = True
        # spawn.py starts each program in a session of its own, so -PID reaches its children
        # too (dash's kill wants "-TERM -PID", without "--").
        script = (
            f"kill -TERM -{self.pid} 2>/dev/null; i=0; "
            f"while alive {self.pid} && [ $i -lt {int(wait * 100)} ]; "
            f"do sleep 0.01; i=$((i+1)); done; kill -KILL -{self.pid} 2>/dev/null; true"
        )
        alive = f"{_ALIVE}alive {self.pid} && echo running; "
        return "running" in self._run(alive + script, wait + 5).out


class Node:
    def __init__(
        self, lab: Lab, name: str, container: str, role: Role, program: bool = False
    ) -> None:
        self.lab, self.name, self.container, self.role = lab, name, container, role
        self.program = program  # runs a program container of its own (an own-image node)
        self.notes: list[str] = []  # each call that ran here instead of there, and why
        self.left_in: set[str] = set()  # program containers where an exec never came back
        self._where: dict[tuple[str, ...], tuple[str, str]] = {}
        self._ifaces: dict[str, Iface] | None = None

    def __repr__(self) -> str:
        return f"Node({self.name})"

    def where(self, programs: list[str], sandbox: bool = False) -> tuple[str, str]:
        """(container, note) for a call that needs programs: the node's program container when
        it has them all, else the node's own one with a note (asked once per set of programs).
        sandbox, or a Lab inside evidence(): the node's own container, which hoplab's tools need."""
        if sandbox or not self.program or self.lab.gathering:
            return self.container, ""
        key = tuple(programs)
        if key not in self._where:
            self._where[key] = found = self.lab.engine.exec_target(self.container, list(key))
            if found[1]:
                self.notes.append(found[1])
                log.info("%s: %s", self.name, found[1])
        return self._where[key]

    def run(self, cmd: list[str] | str, timeout: float = 20, *, sandbox: bool = False) -> Result:
        """Run and wait, never longer than timeout: coreutils' timeout bounds it in the node.

        In the node's program container when it has the tools (env, timeout and the command),
        else in the node's own container; sandbox=True: always the node's own container."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        container, note = self.where(["env", "timeout", argv[0]], sandbox)
        res = self.run_in(container, argv, timeout)
        return replace(res, note=note)

    def run_in(self, container: str, argv: list[str], timeout: float = 20) -> Result:
        """Run argv in one of the node's containers, bounded by timeout.

        The exec carries the lab's run mark from its first instant (env, before timeout), so if
        it never comes back (Ctrl-C, a crash) whatever it started is still found and stopped.
        """
        bounded = ["env", f"{RUN_ENV}={self.lab.run_id}", "timeout", "-k", "2", str(timeout), *argv]
        try:
            # and bounded outside too: root in the node can make `timeout` itself hang
            code, out, err = self.lab.engine.run(container, bounded, timeout + SLACK)
        except BaseException:
            self.left_in.add(container)  # stop_all sweeps it by mark
            self.lab._unfinished.add(self.name)
            raise
        return Result(code, out.decode(errors="replace"), err.decode(errors="replace"), container)

    def stream(self, cmd: list[str], out: Callable[[bytes], None], err: TextIO) -> int:
        """Run cmd in the node's hoplab/node container and pass its output on as it comes.

        For programs that end when their reader chooses (a live capture), not by themselves:
        the exec carries the run mark and the node is always left for stop_all to sweep, since
        the exec is still running when the reader goes away (Ctrl-C, a closed pipe).
        """
        self.lab._unfinished.add(self.name)

        def write(fd: int, data: bytes) -> None:
            if fd == 1:
                out(data)
            else:
                err.write(data.decode(errors="replace"))
                err.flush()

        argv = ["env", f"{RUN_ENV}={self.lab.run_id}", *cmd]
        return self.lab.engine.exec_stream(self.container, argv, write)

    def logs(self, tail: int = 200) -> str | None:
        """What an own-image node's program printed (None for a hoplab/node node): the one way
        to hear from a program whose image has no tool to ask it with."""
        return self.lab.engine.app_log(self.container, tail)

    def py(self, program: str, *args: Any, timeout: float = 20) -> Result:
        """Run one of the in-node programs from hosts/programs."""
        return self.run(
            ["python3", f"{PROGRAMS}/{program}", *map(str, args)], timeout=timeout, sandbox=True
        )

    def start(
        self, cmd: list[str], ready: str = "", timeout: float = 10, *, sandbox: bool = False
    ) -> Proc:
        """Start cmd in the background; return once its output contains `ready`.

        Where run() would run it, when that container also has hoplab's spawn.py (an image
        FROM hoplab/node); else in the node's own container."""
        spawn = f"{PROGRAMS}/spawn.py"
        container, note = self.where(["env", "timeout", "python3", spawn, cmd[0]], sandbox)
        log = self.lab.scratch("proc", ".log")
        try:
            argv = ["python3", spawn, log, ready, str(timeout), "--", *cmd]
            info = self.run_in(container, argv, timeout + 5).json()
            if "pid" not in info:
                raise HoplabError(
                    f"{self.name}: {shlex.join(cmd)} did not start: {info.get('error')}\n"
                    f"{info.get('log', '')}" + (f"\n({note})" if note else "")
                )
            proc = Proc(self, int(info["pid"]), log, cmd=tuple(cmd), container=container)
            return self.lab.register(proc)
        except BaseException:
            # Whatever it started before we could register it (a Ctrl-C between the exec's
            # answer and the line above, a program that never got ready) goes by its mark.
            self.left_in.add(container)
            self.lab._unfinished.add(self.name)
            raise

    def start_py(self, program: str, *args: Any, ready: str = "", timeout: float = 10) -> Proc:
        return self.start(
            ["python3", "-u", f"{PROGRAMS}/{program}", *map(str, args)],
            ready,
            timeout,
            sandbox=True,
        )

    def copy_in(
        self, src: str | Path | bytes, dest: str, mode: int = 0o755, *, sandbox: bool = False
    ) -> None:
        """Copy a file (or bytes) to dest where run() runs, making dest's directory if missing."""
        data = src if isinstance(src, bytes) else Path(src).read_bytes()
        container = self.where([], sandbox)[0]
        try:
            self.lab.engine.put_file(container, dest, data, mode)
        except HoplabError:
            parent = str(Path(dest).parent)
            if (
                self.run_in(container, ["test", "-d", parent]).ok
                or not self.run_in(container, ["mkdir", "-p", parent]).ok
            ):
                raise
            self.lab.engine.put_file(container, dest, data, mode)

    def fetch(self, path: str, *, container: str = "", sandbox: bool = False) -> bytes:
        """A file of the node, from where run() runs (its program's files), or from container."""
        return self.lab.engine.get_file(container or self.where([], sandbox)[0], path)

    def interfaces(self) -> dict[str, Iface]:
        """Interface names and MACs are not predictable: read them once, at run time."""
        if self._ifaces is None:
            res = self.run(["ip", "-j", "addr", "show"], sandbox=True)
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
            res = self.node.run(
                ["tc", "-j", "-s", "qdisc", "show", "dev", self.iface], sandbox=True
            )
            return sum(q.get("drops", 0) for q in json.loads(res.out or "[]"))
        total = 0
        for chain in ("FORWARD", "OUTPUT"):
            res = self.node.run(["iptables", "-L", chain, "-v", "-x", "-n"], sandbox=True)
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
    """A running lab read back from the engine's labels, with helpers to act in it.

    It is hoplab.Lab too: `with hoplab.up(...) as lab:` removes the lab when the block ends, also
    on an error or Ctrl-C. A lab from attach() is someone else's: leaving its block only stops the
    background programs started through it.
    """

    # Set by hoplab.up(): what was planned, what up did (and how long each phase took), and that
    # this Lab made the lab, so leaving its `with` block removes it.
    plan: Plan | None = None
    report: UpReport | None = None
    owned: bool = False

    def __init__(self, engine: EngineAPI, state: LabState, artifacts: Path | None = None) -> None:
        self.engine = engine
        self.state = state
        self.name = state.name
        self.artifacts = artifacts
        self.run_id = new_run_id()
        self._procs: list[Proc] = []
        self._seq = itertools.count()
        self._unfinished: set[str] = set()  # nodes with an exec that never came back
        self._nodes = {
            n.name: Node(self, n.name, n.container, n.role, program=bool(n.app))
            for n in state.nodes
        }
        self.gathering = False  # inside evidence(): every call in the nodes' own containers

    @contextlib.contextmanager
    def evidence(self) -> Iterator[None]:
        """hoplab's own evidence gathering (an exercise, a grading): every Node call in it runs
        in the nodes' own containers, with hoplab's programs, tools and capabilities, whatever
        an own-image node's program container holds."""
        before, self.gathering = self.gathering, True
        try:
            yield
        finally:
            self.gathering = before

    @classmethod
    def attach(cls, engine: EngineAPI, name: str, artifacts: Path | None = None) -> Self:
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
        return [(self.node(r), via) for r, via in route_path(self.state, src, dst_ip)]

    # --- what this Lab started, and what earlier runs left ---------------------------------------

    def scratch(self, kind: str, suffix: str = "") -> str:
        """A fresh path under the nodes' scratch directory, unique to this Lab (logs, captures)."""
        return f"{SCRATCH}/{kind}-{self.run_id.rsplit('/', 1)[1]}-{next(self._seq)}{suffix}"

    def register(self, proc: Proc) -> Proc:
        """Track a background program, so that stop_all stops it."""
        self._procs.append(proc)
        return proc

    def forget(self, proc: Proc) -> None:
        """Stop tracking a program its owner stopped itself."""
        with contextlib.suppress(ValueError):
            self._procs.remove(proc)

    @property
    def procs(self) -> tuple[Proc, ...]:
        """Background programs started and not yet stopped through stop_all, oldest first."""
        return tuple(self._procs)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.owned:
            self.down()
        else:
            self.stop_all()

    def down(self, progress: Progress = no_progress) -> tuple[int, int]:
        """Stop background programs, then remove every container and network.

        A second Ctrl-C cannot cut this half-way: the lab is removed whole or stays whole.
        """
        with sigint_deferred():
            with contextlib.suppress(HoplabError):
                self.stop_all()
            return self.engine.down(self.name, progress)

    def stop_all(self) -> list[str]:
        """Stop every program this Lab started, newest first; return what was still running.

        Tracked programs stop through their process group. Nodes where an exec never came back
        (Ctrl-C, an error) are swept for this run's mark as well: that catches a program whose
        pid we never learnt. A second Ctrl-C cannot cut this short.
        """
        stopped: list[str] = []
        with sigint_deferred():
            while self._procs:
                proc = self._procs.pop()
                with contextlib.suppress(HoplabError):
                    if proc.stop():
                        stopped.append(f"{proc.node.name}: {shlex.join(proc.cmd)}")
            # Each node's own container, and its program's where an exec was cut short there.
            unfinished = [
                (n, c)
                for n in sorted(self._unfinished)
                for c in sorted({self.node(n).container, *self.node(n).left_in})
            ]
            for n in self._unfinished:
                self.node(n).left_in.clear()
            self._unfinished.clear()

            def sweep(item: tuple[str, str]) -> list[Left]:
                return _scan(self.engine, item[1], item[0], "kill", [self.run_id])

            with contextlib.suppress(HoplabError):
                swept = _each_node(sweep, unfinished)
                stopped += [left.describe() for per_node in swept for left in per_node]
        return stopped

    def reap(self, files: bool = False) -> list[Left]:
        """Kill what earlier runs left in this lab's nodes, whoever left them; return it.

        Strays are programs marked by a run whose process is gone (a crashed or interrupted
        CLI, a killed test run), and every participant program (nobody). Runs that are still
        alive, this one included, keep theirs. Exercises and gradings call this first, so a
        server left on a port never decides the next result. With `files` (gradings), what
        nobody wrote in /tmp, /var/tmp and /dev/shm goes too, in every node.
        """

        def listed(node: Node) -> list[Left] | None:
            try:
                return _listed(self.engine, node.container, node.name)
            except HoplabError:
                return None  # processes churning too fast to list: reap nobody's anyway

        todo: list[tuple[Node, list[str]]] = []
        for node, found in zip(self.nodes, _each_node(listed, self.nodes), strict=True):
            if found is None:
                todo.append((node, []))
                continue
            dead = sorted({f.run for f in found if f.run and not run_alive(f.run)})
            if files or dead or any(f.user == "nobody" for f in found):
                todo.append((node, dead))
        mode = "reap-files" if files else "reap"

        def one(item: tuple[Node, list[str]]) -> list[Left]:
            node, dead = item
            try:
                return _scan(self.engine, node.container, node.name, mode, dead)
            except Overdue:
                # Root in the node made the scan hang: it was killed from outside, and the node
                # refuses execs for a while, so the grading that follows fails at once, saying so.
                return []
            except HoplabError:
                # No exec starts in a node whose pids limit is full: restart it (routes come
                # back with the entrypoint), which ends every process in it at once.
                found = listed(node) or []
                self.engine.restart(node.container, READY)
                node._ifaces = None  # interface names may come back in another order
                return found

        reaped = _each_node(one, todo)
        return [left for per_node in reaped for left in per_node]

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
            res = n.run(["tc", "qdisc", "add", "dev", iface, "root", "netem", *netem], sandbox=True)
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
                res = n.run(["iptables", "-I", *rule], sandbox=True)
                if not res.ok:
                    raise HoplabError(f"{node}: iptables failed: {res.err.strip()}")
            yield imp
        finally:
            with sigint_deferred():  # a second Ctrl-C must not leave a router dropping packets
                if imp.rules:
                    for rule in imp.rules:
                        n.run(["iptables", "-D", *rule], sandbox=True)
                else:
                    n.run(["tc", "qdisc", "del", "dev", iface, "root"], sandbox=True)

    def impair_link(
        self,
        network: str,
        *,
        loss: str | None = None,
        delay: str | None = None,
        jitter: str | None = None,
        rate: str | None = None,
        node: str | None = None,
        allow_unsupported: bool = False,
    ) -> list[str]:
        """Replace network's link impairment, as the topology file's x-hoplab.impair and
        `hoplab impair` do: values in the file's words ("5%", "20ms", "10mbit"); every node's
        egress on it, or only `node`'s; none of them clears it. It stays until changed (or
        `up` puts the file's back), unlike the scoped `impair`. Returns warnings."""
        from hoplab.model.impair import parse as parse_impair

        given = {"loss": loss, "delay": delay, "jitter": jitter, "rate": rate}
        given = {k: v for k, v in given.items() if v is not None}
        imp = parse_impair(given, key="impair") if given else None
        self.state = self.engine.state(self.name)
        return self.engine.change_impairment(self.state, network, imp, node, allow_unsupported)

    def link_impairments(self) -> dict[tuple[str, str], str]:
        """(node, network) -> what impairs that interface now, read from the kernel."""
        return self.engine.impairments(self.state)

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
            where = next((n for n in on_it if n.kind.rules.forwards), on_it[0]).name
        node = where
        n = self.node(node)
        iface = n.iface(network)
        cap = Capture(n, network)
        remote = self.scratch("cap", ".pcap")
        cmd = [
            "tcpdump",
            "-i",
            iface.name,
            "-n",
            "-U",
            "--immediate-mode",
            "-Z",  # stay root: a tcpdump that drops to its own user hides its run mark from root
            "root",
            "-s",
            "256",
            "-w",
            remote,
        ]
        proc = n.start([*cmd, *shlex.split(bpf)], ready="listening on", sandbox=True)
        try:
            yield cap
        except BaseException:
            # Stop tcpdump, and let the error (a Ctrl-C above all) go on untouched: fetching
            # the file now could fail and replace it.
            with contextlib.suppress(HoplabError), sigint_deferred():
                proc.stop()
                self.forget(proc)
                n.run(["rm", "-f", remote], sandbox=True)
            raise
        else:
            proc.stop()
            self.forget(proc)
            data = n.fetch(remote, sandbox=True)
            n.run(["rm", "-f", remote], sandbox=True)
            from hoplab.runtime import pcap

            cap.frames = pcap.parse(data)
            if self.artifacts is not None:
                self.artifacts.mkdir(parents=True, exist_ok=True)
                stem = label or f"{node}-{network}"
                cap.path = self.artifacts / f"{stem}.pcap"
                cap.path.write_bytes(data)
