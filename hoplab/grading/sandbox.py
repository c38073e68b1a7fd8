"""The fence around a participant's program: copy it in, run it bounded, always clean up.

Submitted code runs as nobody under CPU and file-size limits (hosts/programs/grade_run.py), in a
session of its own, so a runaway, a crash or a hang becomes a FAIL with a hint and never a hung
grader: foreground runs are bounded by a wall-clock limit in the node and by Node.run's timeout;
background servers are killed as a whole process group, and a final sweep kills every process
of nobody in the nodes used (only submitted code runs as nobody there), which catches what
escaped its group. The lab's memory and pids limits bound the rest. One grading per lab at a
time: a lab belongs to one participant.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hoplab import resources
from hoplab.checks import Check, check, fail
from hoplab.errors import HoplabError

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab, Node, Proc

CPU_SECONDS = 30  # per program: a spinning loop is killed by the kernel even without us
START_WAIT = 5.0  # seconds a server gets to start listening
# /proc/PID/fd of a nobody process is closed to root without CAP_SYS_PTRACE (nodes lack it), so
# whatever reads a participant's sockets (ls /proc/PID/fd, ss -p) runs as nobody too.
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
PROGRAMS = "/opt/hoplab"  # hoplab's own in-node programs (hosts/programs in the image)
_runs = itertools.count()


def closing_script(run_dir: str, forbids: tuple[str, ...]) -> str:
    """Make the run's folder, and close to nobody what could do the work for the program.

    hoplab's in-node programs (an echo server, a socket scope) and the tools the assignment
    forbids become root's alone (root still runs them: the grader's peers need some). The
    folder can be entered but not listed by nobody, so the peers copied into it stay unknown.
    The change is kept: a later grading in the node needs it again, and root is not hindered.
    """
    tools = " ".join(shlex.quote(t) for t in forbids)
    return (
        f"set -e; mkdir -p {shlex.quote(run_dir)}/out; chmod 0711 {shlex.quote(run_dir)}; "
        f"chmod 0700 {PROGRAMS}; "
        f'for t in {tools}; do p=$(command -v "$t" || true); '
        f'[ -n "$p" ] && chmod 0750 "$(readlink -f "$p")"; done; true'
    )


def grade_dir() -> str:
    """Where gradings put their files in a node: under the lab's scratch folder."""
    from hoplab.runtime.lab import SCRATCH  # here, not at import: the runtime imports docker

    return f"{SCRATCH}/grade"


class Stopped(Exception):
    """Grading cannot go on (the program did not start); carries the FAIL that says why.

    Raised by the fence (Fence.serve), caught by the grader: it lives with the fence, so the
    assignment's description (base.py) and the fence never import each other."""

    def __init__(self, check: Check) -> None:
        super().__init__(check.observed)
        self.check = check


@dataclass(frozen=True)
class Ran:
    """A foreground run of the participant's program."""

    code: int | None
    signal: str | None
    timed_out: bool
    seconds: float
    out: str
    err: str
    limit: float

    @property
    def ok(self) -> bool:
        return self.code == 0

    def describe(self) -> str:
        """What happened, in the words a participant needs: exit code, signal or time-out."""
        if self.timed_out:
            what = f"still running after {self.limit:g} s: stopped"
        elif self.signal:
            what = f"killed by {self.signal} after {self.seconds:.1f} s"
        else:
            what = f"exit code {self.code} after {self.seconds:.1f} s"
        last = last_error(self.err)
        return f"{what}; {last}" if last else what


def last_error(text: str) -> str:
    """The line of a traceback that names the exception, or the last line of stderr."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][-300:] if lines else ""


def runtime_check(name: str, ran: Ran) -> Check:
    """PASS when the program exited 0 in time; else a FAIL that says which way it went wrong."""
    if ran.timed_out:
        hint = (
            "the program did not finish: an endless loop, or a recv()/recvfrom() with no "
            "timeout waiting for something that never comes (sock.settimeout())"
        )
    elif "File too large" in ran.err or ran.signal == "SIGXFSZ":
        hint = "the program wrote more than 16 MB (to stdout or a file): print less"
    elif ran.signal == "SIGXCPU":
        hint = "the program used its whole CPU allowance: a loop that never waits or ends"
    elif ran.code != 0:
        hint = "the program crashed or exited with an error; the last line of its stderr is shown"
    else:
        hint = ""
    return check(name, ran.ok, f"exit code 0 within {ran.limit:g} s", ran.describe(), hint=hint)


@dataclass(frozen=True)
class Sockets:
    """Distinct sockets held by the participant's processes in one node, and by which pid."""

    total: int
    by_pid: dict[int, int]
    main: int  # the graded process

    def describe(self) -> str:
        """'4 socket(s): 1 in your server (pid 12), 3 in pid 15' for observed values."""
        parts = [
            f"{n} in your server (pid {pid})" if pid == self.main else f"{n} in pid {pid}"
            for pid, n in sorted(self.by_pid.items(), key=lambda kv: (kv[0] != self.main, kv[0]))
        ]
        return f"{self.total} socket(s)" + (f": {', '.join(parts)}" if len(parts) > 1 else "")


@dataclass
class Served:
    """A participant's server running in the background."""

    node: Node
    proc: Proc
    listen: str
    run_dir: str = ""  # where grade_run.py is in the node

    def alive(self) -> bool:
        return self.node.run(["kill", "-0", str(self.proc.pid)]).ok

    def tail(self) -> str:
        res = self.node.run(["tail", "-c", "3000", self.proc.log])
        return last_error(res.out)

    def status(self) -> str:
        """'' while it runs; else how it ended, for observed values and hints."""
        return "" if self.alive() else f" (your server exited: {self.tail() or 'no output'})"

    def sockets(self) -> Sockets:
        """The sockets the participant's program holds open right now, in all its processes.

        Read from /proc/*/fd as nobody, which sees exactly the fds of nobody's processes: only
        submitted code runs as nobody in a node, and every grading starts by reaping what an
        earlier one left. So a child, a setsid daemon or a thread cannot hide a socket from the
        count, and no process of hoplab's can add one. A socket shared by fork counts once.
        """
        res = self.node.run([*AS_NOBODY, "python3", f"{self.run_dir}/grade_run.py", "sockets"])
        info = res.json() if res.ok else {}
        by_pid = {int(pid): n for pid, n in info.get("by_pid", {}).items()}
        return Sockets(int(info.get("total", 0)), by_pid, self.proc.pid)

    def socket_fds(self) -> int:
        """How many distinct sockets the program holds open right now (see sockets())."""
        return self.sockets().total


@dataclass
class Fence:
    """One grading run in one lab: where the program goes, what runs, and the clean-up."""

    lab: Lab
    source: bytes  # the participant's program
    program: str  # its file name in the nodes
    forbids: tuple[str, ...] = ()  # tools closed to the program (Assignment.forbids)
    run_dir: str = field(default_factory=lambda: f"{grade_dir()}/{os.getpid()}-{next(_runs)}")
    _nodes: dict[str, set[str]] = field(default_factory=dict)  # node -> files copied in
    _node_objs: dict[str, Node] = field(default_factory=dict)
    _served: list[Served] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"{self.run_dir}/{self.program}"

    def install(self, node: Node, *files: str) -> Node:
        """Copy the fence (grade_run.py) and the named files into the node, each once, through
        the Docker API. files are the participant's program (self.program) or grade peers.

        The peers are copied too (not only baked into the image) so a lab started before an
        upgrade still grades with the peers this grader expects.
        """
        have = self._nodes.setdefault(node.name, set())
        if not have:
            res = node.run(["sh", "-c", closing_script(self.run_dir, self.forbids)])
            if not res.ok:
                raise HoplabError(f"{node.name}: cannot make {self.run_dir}: {res.err.strip()}")
            self._node_objs[node.name] = node
        programs = resources.hosts_dir() / "programs"
        for name in ("grade_run.py", *files):
            if name not in have:
                src = self.source if name == self.program else programs / name
                # Only the program and the fence (which runs the socket reader as nobody) are
                # readable by nobody; the peers are root's, so none can be run in its place.
                shared = name in (self.program, "grade_run.py")
                node.copy_in(src, f"{self.run_dir}/{name}", mode=0o644 if shared else 0o600)
                have.add(name)
        return node

    def peer(self, node: Node, program: str, *args: object, timeout: float = 20) -> dict:
        """Run one of hoplab's grade peers (as root) and return its JSON."""
        self.install(node, program)
        argv = ["python3", f"{self.run_dir}/{program}", *map(str, args)]
        return node.run(argv, timeout=timeout).json()

    def secret(self, node: Node, text: str) -> str:
        """Put text in a file in the node that only root can read; return its path.

        Grade peers get their secrets (and anything a participant must not see in advance) this
        way, never in argv or the environment: /proc/PID/cmdline is world-readable in the nodes,
        and a participant's program runs as nobody beside the peers. The file is root's, 0600,
        in the run's folder; the peer reads and removes it, and close() removes the folder.
        """
        self.install(node)
        path = f"{self.run_dir}/secret-{next(_runs)}"
        node.copy_in(text.encode(), path, mode=0o600)
        return path

    def start_peer(self, node: Node, program: str, *args: object, ready: str) -> Proc:
        self.install(node, program)
        return node.start(["python3", "-u", f"{self.run_dir}/{program}", *map(str, args)], ready)

    def run(self, node: Node, *args: object, limit: float) -> Ran:
        """Run the program to its end, or until limit: never longer, whatever it does."""
        self.install(node, self.program)
        outdir = f"{self.run_dir}/out/{next(_runs)}"
        node.run(["mkdir", "-p", outdir])
        argv = [
            "python3",
            f"{self.run_dir}/grade_run.py",
            "run",
            f"{limit:g}",
            str(CPU_SECONDS),
            outdir,
            "--",
            "python3",
            "-u",
            self.path,
            *map(str, args),
        ]
        info = node.run(argv, timeout=limit + 10).json()
        return Ran(
            info["code"],
            info["signal"],
            info["timed_out"],
            info["seconds"],
            info["out"],
            info["err"],
            limit,
        )

    def serve(self, node: Node, *args: object, listen: str, name: str) -> Served:
        """Start the program as a server; return once it listens, or stop grading with a FAIL.

        listen is "tcp PORT", "udp PORT" or "unix PATH": what `ss` must show before the
        clients come (a bounded wait on that event, in one exec).
        """
        self.install(node, self.program)
        cmd = [
            "python3",
            f"{self.run_dir}/grade_run.py",
            "exec",
            str(CPU_SECONDS),
            "--",
            "python3",
            "-u",
            self.path,
            *map(str, args),
        ]
        proc = node.start(cmd)
        served = Served(node, proc, listen, self.run_dir)
        self._served.append(served)
        kind, where = listen.split(" ", 1)
        state = node.run(
            ["python3", f"{self.run_dir}/grade_run.py", "wait", str(proc.pid), kind, where,
             str(START_WAIT)],
            timeout=START_WAIT + 10,
        ).out.strip()  # fmt: skip
        expected = f"listening on {listen} within {START_WAIT:g} s"
        if state == "listening":
            return served
        if state == "exited":
            raise Stopped(
                fail(
                    name,
                    expected,
                    f"the program exited before it listened: {served.tail() or 'no output'}",
                    hint="read the error: a TODO still raising NotImplementedError, a typo, or "
                    "bind() failing with EADDRINUSE (set SO_REUSEADDR before bind(), so a "
                    "connection of an earlier run in TIME_WAIT does not block the port)",
                )
            )
        raise Stopped(
            fail(
                name,
                expected,
                f"still running after {START_WAIT:g} s but not listening on {listen}"
                + (f"; output: {served.tail()}" if served.tail() else ""),
                hint="create the socket and bind() it (and listen(), for TCP) first, before "
                "any loop: an endless loop or a blocking call before that never gets there",
            )
        )

    def started(self, name: str, served: Served) -> Check:
        return check(name, True, f"listening on {served.listen}", f"listening on {served.listen}")

    def stop(self, served: Served) -> None:
        """SIGTERM the server's whole process group, then SIGKILL it: children go too."""
        pid = served.proc.pid
        script = (
            f"kill -TERM -{pid} 2>/dev/null; i=0; "
            f"while kill -0 {pid} 2>/dev/null && [ $i -lt 100 ]; do sleep 0.01; i=$((i+1)); done; "
            f"kill -KILL -{pid} 2>/dev/null; true"
        )
        served.node.run(["sh", "-c", script], timeout=8)
        served.proc.stopped = True

    def close(self) -> None:
        """Stop every server, kill whatever escaped, and remove the program from every node."""
        while self._served:
            with contextlib.suppress(HoplabError):
                self.stop(self._served.pop())
        self.lab.stop_all()
        sweep = f"python3 {self.run_dir}/grade_run.py sweep; rm -rf {self.run_dir}"
        for node in self._node_objs.values():
            with contextlib.suppress(HoplabError):
                node.run(["sh", "-c", sweep])
        self._nodes.clear()
        self._node_objs.clear()
