"""pytest plugin: a routed lab for anyone's tests, across real router hops, with loss.

    def test_answers_across_two_routers(hoplab):
        hoplab.node("srv").copy_in("server.py", "/srv/server.py")
        with hoplab.node("srv").start(["python3", "-u", "/srv/server.py"], ready="listening"):
            res = hoplab.node("alice").run(["nc", "-w2", hoplab.address("srv", "lan2"), "7000"])
        assert res.code == 0

Loaded through the `pytest11` entry point, so it is present in every pytest run; it stays inert
(no Docker call, and no import of docker, the runtime or YAML: those load when a fixture first
runs) until a test asks for `hoplab` or `hoplab_lab`. It imports only the standard library, pytest
and modules named `hoplab.*`, so a project's own `lab` package cannot shadow any of it. Every lab
it makes is
labelled with the pid, process start time and host of the pytest process that owns it, so:

- each process (each pytest-xdist worker) gets a lab of its own: its own name, and subnets the
  planner remaps away from every other network on the engine;
- teardown runs from the fixture's finalizer, again from pytest_sessionfinish (Ctrl-C), and again
  at interpreter exit, and a second Ctrl-C cannot cut it half-way;
- a run that was killed outright leaves a lab whose owner is gone; the next run on this host reaps
  it, and never touches a lab whose owner still lives.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import shlex
import socket
import threading
from collections.abc import Callable, Generator, Iterator
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from hoplab import resources
from hoplab.engine import reaping
from hoplab.errors import HoplabError
from hoplab.interrupts import sigint_deferred

if TYPE_CHECKING:
    from hoplab.engine.interface import EngineAPI
    from hoplab.runtime.lab import Lab, Proc
    from hoplab.runtime.reuse import AttachLock

LOG_LINES = 20

_MANAGER = pytest.StashKey["LabManager"]()
_PROCS_BEFORE = pytest.StashKey[set[int]]()


# --- who owns a lab (the decisions are engine/reaping's, shared with its unit tests) ---------


def owner_labels() -> dict[str, str]:
    """The labels that tie a lab to this pytest process on this host."""
    pid = os.getpid()
    return reaping.owner_labels(pid, reaping.process_start(pid), socket.gethostname())


# --- the labs of one pytest process ----------------------------------------------------------


class LabManager:
    """The labs this pytest process made; one per process, kept on the pytest config.

    The engine connection is made on first use, so runs that never ask for a lab never touch
    Docker.
    """

    def __init__(self, rootdir: Path, topology: str | None, invocation_dir: Path) -> None:
        self.rootdir, self.topology, self.invocation_dir = rootdir, topology, invocation_dir
        self._engine: EngineAPI | None = None
        self._names = itertools.count()
        self._live: dict[str, Lab | None] = {}
        self._lock = threading.Lock()
        self._atexit = False
        # --hoplab-reuse: reused lab name -> its AttachLock and topology file
        self._reused: dict[str, tuple[AttachLock, Path]] = {}

    @property
    def engine(self) -> EngineAPI:
        if self._engine is None:
            from hoplab import api

            self._engine = api.from_env()
            self.reap()
        return self._engine

    def default_topology(self) -> Path:
        """--hoplab-topology, else compose.yaml at the rootdir, else hoplab's own default lab."""
        if self.topology:
            given = Path(self.topology).expanduser()
            for base in (self.invocation_dir, self.rootdir):
                if (base / given).exists():
                    return base / given
            return self.invocation_dir / given  # the loader then names the missing file
        own = self.rootdir / resources.DEFAULT_FILE
        return own if own.exists() else resources.default_lab()

    def reap(self) -> list[str]:
        """Remove labs left by crashed pytest runs on this host; returns their names."""
        assert self._engine is not None
        return reaping.reap(self._engine, socket.gethostname())

    def up(self, path: Path, artifacts: Path | None = None) -> Lab:
        """Bring a lab of the topology up under a fresh name owned by this process."""
        from hoplab import api

        topo = api.topology(path)  # first: bad input names file, line and key before Docker
        engine = self.engine
        name = self._fresh_name(engine)
        with self._lock:
            self._live[name] = None  # known before the first object exists: teardown finds it
        if not self._atexit:
            atexit.register(self.down_all)
            self._atexit = True
        try:
            lab = api.up(topo, name, labels=owner_labels(), artifacts=artifacts, engine=engine)
        except BaseException:
            with contextlib.suppress(Exception):  # the engine rolled back; this forgets the name
                self.down(name)
            raise
        with self._lock:
            self._live[name] = lab
        return lab

    def up_reused(self, path: Path, artifacts: Path | None = None) -> Lab | None:
        """--hoplab-reuse: attach to this topology's kept lab (reset first), or bring it up; it
        stays up after the session. None when another session holds it (then the caller makes a
        lab of its own). A changed topology or image rebuilds it (reconcile decides)."""
        from hoplab import api
        from hoplab.runtime import reuse
        from hoplab.runtime.lab import Lab

        topo = api.topology(path)  # first: bad input names file, line and key before Docker
        engine = self.engine
        name = reuse.lab_name(self.rootdir, path)
        lock = reuse.AttachLock(name)
        if not lock.acquire():
            return None
        try:
            state = engine.state(name)
            if state.running and lock.left_clean:  # reset as the last session let go
                lab = api.up(topo, name, artifacts=artifacts, engine=engine, heal=False)
            else:
                if state.running:  # reset before up: up then puts the file's impairments back
                    try:
                        reuse.reset(Lab(engine, state))
                    except HoplabError:
                        engine.down(name)  # a lab that cannot be reset is made afresh
                elif state.exists:  # half stopped: its running nodes could not be reset alone
                    engine.down(name)
                lab = api.up(topo, name, artifacts=artifacts, engine=engine)
        except BaseException:
            lock.release()
            raise
        with self._lock:
            self._reused[name] = (lock, path)
        return lab

    def release(self, lab: Lab) -> None:
        """End this session's use of a reused lab: its programs stop, the lab stays up, put
        right for the next session (reset, then up: the file's impairments, broken nodes
        restarted), and the lock file says so; if that fails, the next session resets it."""
        from hoplab import api
        from hoplab.runtime import reuse

        with self._lock:
            lock, path = self._reused.pop(lab.name, (None, None))
        try:
            with sigint_deferred(), contextlib.suppress(HoplabError):
                lab.stop_all()
                if lock is not None:
                    reuse.reset(lab)
                    api.up(api.topology(path), lab.name, engine=self.engine)
                    lock.mark_clean()
        finally:
            if lock is not None:
                lock.release()

    def remove_reused(self, path: Path) -> str:
        """--hoplab-reuse=off: remove this topology's kept lab, unless a session holds it."""
        from hoplab.runtime import reuse

        return reuse.remove(self.engine, reuse.lab_name(self.rootdir, path))

    def _fresh_name(self, engine: EngineAPI) -> str:
        """A name of this process, skipping any the engine already holds (pid reuse, a crash)."""
        for _ in range(100):
            name = reaping.lab_name_for(os.getpid(), next(self._names), socket.gethostname())
            if not engine.state(name).exists:
                return name
        raise HoplabError(f"no free lab name for pid {os.getpid()}")

    def down(self, name: str) -> None:
        """Stop the lab's background programs, then remove it; a second Ctrl-C waits."""
        with self._lock:
            lab = self._live.get(name)
        with sigint_deferred():
            if lab is not None:
                with contextlib.suppress(HoplabError):
                    lab.stop_all()
            if self._engine is not None:
                self._engine.down(name)
        with self._lock:
            self._live.pop(name, None)

    def down_all(self) -> None:
        """The safety net: down every lab this process made and has not removed yet."""
        with self._lock:
            names = list(self._live)
        for name in names:
            with contextlib.suppress(Exception):
                self.down(name)

    def live(self) -> list[str]:
        with self._lock:
            return list(self._live)

    def labs(self) -> list[Lab]:
        with self._lock:
            return [lab for lab in self._live.values() if lab is not None]


def _manager(config: pytest.Config) -> LabManager:
    if _MANAGER not in config.stash:
        config.stash[_MANAGER] = LabManager(
            Path(str(config.rootpath)),
            config.getoption("hoplab_topology"),
            Path(str(config.invocation_params.dir)),
        )
    return config.stash[_MANAGER]


# --- hooks -------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hoplab", "routed network lab (hoplab)")
    group.addoption(
        "--hoplab-topology",
        dest="hoplab_topology",
        default=None,
        metavar="FILE",
        help="topology for the `hoplab` fixture (default: compose.yaml at the rootdir, else "
        "hoplab's default lab)",
    )
    group.addoption(
        "--hoplab-reuse",
        dest="hoplab_reuse",
        nargs="?",
        const="on",
        default=None,
        choices=("on", "off"),
        help="keep the `hoplab` fixture's lab up after the session and attach to it next time "
        "(reset, or rebuilt if the topology or image changed); =off removes the kept lab",
    )
    parser.addini("hoplab_reuse", "on: as --hoplab-reuse (the command line wins)", default="off")


def reuse_mode(config: pytest.Config) -> str:
    """on or off: --hoplab-reuse[=on|off], else the hoplab_reuse ini option, else off."""
    given = config.getoption("hoplab_reuse")
    if given is None:
        given = str(config.getini("hoplab_reuse")).strip().lower() or "off"
    if given not in ("on", "off"):
        raise pytest.UsageError(f"hoplab_reuse (ini) must be on or off, not {given!r}")
    return given


def pytest_sessionstart(session: pytest.Session) -> None:
    """--hoplab-reuse=off: the kept lab goes now, whether or not a test asks for a lab."""
    if session.config.getoption("hoplab_reuse") != "off":
        return
    manager = _manager(session.config)
    try:
        said = manager.remove_reused(manager.default_topology())
    except HoplabError as err:
        said = f"could not remove the reused lab: {err.message}"
    if said:
        session.config.get_terminal_writer().line(f"hoplab: {said}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After fixture teardown (also after Ctrl-C): down whatever is somehow still up."""
    manager = session.config.stash.get(_MANAGER, None)
    if manager is not None:
        manager.down_all()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Remember which programs already ran, so a failure report can tell this test's apart."""
    manager = item.config.stash.get(_MANAGER, None)
    if manager is None:
        return
    item.stash[_PROCS_BEFORE] = {id(p) for lab in manager.labs() for p in lab.procs}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """A failing test that used a lab gets a report section with the lab's state."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed or call.when == "teardown":
        return
    labs = _labs_of(item)
    if not labs:
        return
    before = item.stash.get(_PROCS_BEFORE, set())
    for lab in labs:
        try:
            text = describe(lab, before)
        except Exception as err:  # the report must never hide the test's own failure
            text = f"(could not read lab {lab.name}: {err})"
        report.sections.append((f"hoplab lab {lab.name}", text))


def _labs_of(item: pytest.Item) -> list[Lab]:
    if _MANAGER not in item.config.stash:  # no lab was ever asked for: import nothing more
        return []
    from hoplab.runtime.lab import Lab

    funcargs = getattr(item, "funcargs", {}) or {}
    labs: list[Lab] = []
    if isinstance(funcargs.get("hoplab"), Lab):
        labs.append(funcargs["hoplab"])
    factory = funcargs.get("hoplab_lab")
    if isinstance(factory, LabFactory):
        labs.extend(factory.labs)
    return labs


def describe(lab: Lab, before: AbstractSet[int] = frozenset()) -> str:
    """Nodes, addresses, the routes the kernel really holds, and the tail of program output.

    Programs shown: those started during the failing test, and any still running.
    """
    state = lab.engine.state(lab.name)
    nets = ", ".join(f"{n} {s}" for n, s in state.networks.items())
    lines = [f"lab {lab.name}: networks {nets}", "nodes (role, state), addresses, kernel routes:"]

    def live_routes(node: str) -> str:
        try:
            res = lab.node(node).run(["ip", "-4", "route", "show"], timeout=5)
            return res.out if res.ok else f"(ip route failed: {res.err.strip()})"
        except HoplabError as err:
            return f"({err.message})"

    names = [n.name for n in state.nodes if n.state == "running"]
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(names)))) as workers:
        routes = dict(zip(names, workers.map(live_routes, names), strict=True))
    for n in state.nodes:
        addrs = " ".join(f"{net}={ip}" for net, ip in n.addresses.items())
        lines.append(f"{n.name} ({n.role}, {n.state}) {addrs}")
        for route in (routes.get(n.name) or "").strip().splitlines():
            lines.append(f"    {route.rstrip()}")
        if n.app:  # an own-image node: its program's last lines (it may have no shell to ask)
            log = (lab.node(n.name).logs(tail=LOG_LINES) or "").rstrip().splitlines()
            lines.append(f"    --- its own image's container ({n.app}), last {len(log)} lines")
            lines.extend(f"    | {line}" for line in log)
    procs = [p for p in lab.procs if id(p) not in before or not p.stopped]
    if procs:
        lines.append("background programs (this test's, and any still running):")
    for proc in procs:
        lines.append(_proc_tail(proc))
    if not procs:
        lines.append("(no background programs started through the lab)")
    return "\n".join(lines)


def _proc_tail(proc: Proc) -> str:
    what = shlex.join(proc.cmd) or proc.log
    status = "stopped" if proc.stopped else "running"
    try:
        text = proc.output()
    except HoplabError as err:
        text = f"(no output: {err.message})"
    tail = text.rstrip().splitlines()[-LOG_LINES:]
    head = f"--- {proc.node.name} pid {proc.pid} ({status}): {what}; last {len(tail)} lines"
    return "\n".join([head, *(f"    {line}" for line in tail)])


# --- fixtures ----------------------------------------------------------------------------------


def _up_or_fail(manager: LabManager, path: Path, artifacts: Path | None) -> Lab:
    """A lab that cannot come up is the test's setup error, stated as hoplab states it."""
    try:
        return manager.up(path, artifacts)
    except HoplabError as err:
        pytest.fail(f"hoplab could not bring up a lab from {path}:\n{err}", pytrace=False)


@pytest.fixture(scope="session")
def hoplab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    """The lab of --hoplab-topology, up once per process (per xdist worker), down at the end.

    Background programs started through it are stopped at the end of the session; stop them
    sooner with `with node.start(...):` or proc.stop(). Captures are saved under a temp dir.
    """
    manager = _manager(request.config)
    path = manager.default_topology()
    artifacts = tmp_path_factory.mktemp("hoplab")
    if reuse_mode(request.config) == "on":
        try:
            reused = manager.up_reused(path, artifacts)
        except HoplabError as err:
            pytest.fail(f"hoplab could not bring up a lab from {path}:\n{err}", pytrace=False)
        if reused is not None:
            try:
                yield reused
            finally:
                manager.release(reused)
            return
    lab = _up_or_fail(manager, path, artifacts)
    try:
        yield lab
    finally:
        manager.down(lab.name)


class LabFactory:
    """Brings up labs of their own topologies for one test; they are removed after it."""

    def __init__(self, manager: LabManager, base: Path, artifacts: Path) -> None:
        self.manager, self.base, self.artifacts = manager, base, artifacts
        self.labs: list[Lab] = []

    def __call__(self, path: str | Path) -> Lab:
        """path: a topology file, relative to the test file's directory (then the rootdir)."""
        p = Path(path)
        if not p.is_absolute():
            p = next(
                (b / p for b in (self.base, self.manager.rootdir) if (b / p).exists()),
                self.base / p,
            )
        lab = _up_or_fail(self.manager, p, self.artifacts / f"lab{len(self.labs)}")
        self.labs.append(lab)
        return lab

    def close(self) -> None:
        """Down every lab, even if one fails; the first failure is then raised."""
        errors = []
        while self.labs:
            try:
                self.manager.down(self.labs.pop().name)
            except Exception as err:  # the session's safety net tries again at its end
                errors.append(err)
        if errors:
            raise errors[0]


@pytest.fixture
def hoplab_lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Lab]]:
    """A factory: `hoplab_lab("tiny.yaml")` brings that topology up for this test only."""
    factory = LabFactory(_manager(request.config), Path(str(request.path)).parent, tmp_path)
    try:
        yield factory
    finally:
        factory.close()
