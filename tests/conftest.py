"""Shared fixtures. Integration tests use the real Docker Engine: if it is unreachable they fail
loudly (connect() raises), they never skip."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hoplab import lifecycle
from hoplab.engine.client import connect
from hoplab.engine.engine import Engine
from hoplab.model.load import load
from hoplab.runtime.lab import Lab

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
_names = itertools.count()


def pytest_configure(config: pytest.Config) -> None:
    """Make Ctrl-C deliverable, as in a terminal. A run started in the background without job
    control (`cmd &` in a script, nohup) begins with SIGINT ignored, and every child inherits
    that: Python then never raises KeyboardInterrupt, and the Ctrl-C tests would fail or prove
    nothing. A handled signal is reset to the default in children, so they get Ctrl-C too."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def unique_lab_name(prefix: str = "t") -> str:
    """Per process and per call, so parallel runs and helpers never share a lab."""
    return f"{prefix}{os.getpid()}x{next(_names)}"


def run_hoplab(
    *args: str, stdin: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`python -m hoplab ARGS` from the checkout, as a user types it; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "hoplab", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine(connect())


def bring_up(engine: Engine, name: str, path: Path = COMPOSE) -> Lab:
    lifecycle.up(engine, load(path), name, lambda *a: None, lambda m: None)
    return Lab.attach(engine, name)


@pytest.fixture(scope="session")
def lab(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The default lab, up once for the session; exercises must leave it as they found it."""
    name = unique_lab_name()
    try:
        running = bring_up(engine, name)
        running.artifacts = tmp_path_factory.mktemp("artifacts")
        yield running
    finally:
        engine.down(name)


@pytest.fixture
def fresh_lab(engine: Engine, tmp_path: Path) -> Iterator[Lab]:
    """A lab of its own for a test that breaks things on purpose."""
    name = unique_lab_name("b")
    try:
        running = bring_up(engine, name)
        running.artifacts = tmp_path
        yield running
    finally:
        engine.down(name)


# Nothing may outlive the run. CI counts the labelled objects left after `make test`, but a count
# names no culprit; this names each object the session made and left, with the test that was
# running when it was made, and fails the session.
_started: list[tuple[float, str]] = []  # (when, test id), in order


def pytest_runtest_logstart(nodeid: str, location: tuple) -> None:
    import time

    _started.append((time.time(), nodeid))


def _created(value: object) -> float:
    """Docker gives a container's creation as epoch seconds, a network's as RFC 3339 with
    nanoseconds, which datetime cannot read: the fraction is dropped (a second is enough)."""
    if isinstance(value, int | float):
        return float(value)
    from datetime import datetime

    text = re.sub(r"\.\d+", "", str(value)).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def _ours(labels: dict[str, str]) -> bool:
    """Made by this session: its lab, room, graded lab or owner names this process's pid (test
    labs are named by unique_lab_name). Others' labs made meanwhile (a helper's parallel run,
    the user's own) are not this run's to answer for."""
    mine = re.compile(rf"(?<!\d){os.getpid()}(?!\d)")
    keys = ("hoplab.lab", "hoplab.workshop", "hoplab.grader-for", "hoplab.pytest-pid")
    return any(mine.search(labels.get(k, "")) for k in keys)


def _culprit(when: float) -> str:
    found = "before the first test (a session fixture)"
    for start, nodeid in _started:
        if start <= when + 1:  # a network's time is cut to the second
            found = nodeid
    return found


@pytest.hookimpl(trylast=True)  # after the runner has torn down the session fixtures (Ctrl-C)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _started or hasattr(session.config, "workerinput"):
        return
    try:
        api = connect().api
        f = {"label": ["hoplab.lab"]}
        objects = [
            ("container", c["Names"][0].lstrip("/"), c) for c in api.containers(all=True, filters=f)
        ]
        objects += [("network", n["Name"], n) for n in api.networks(filters=f)]
    except Exception:  # noqa: BLE001 - no engine: the tests that needed it have failed already
        return
    since = _started[0][0] - 5
    left = [
        (k, name, o)
        for k, name, o in objects
        if _created(o["Created"]) >= since and _ours(o.get("Labels") or {})
    ]
    if not left:
        return
    lines = [f"\n{len(left)} labelled Docker object(s) made by this run outlived it:"]
    for kind, name, o in left:
        when = _created(o["Created"])
        labels = {k: v for k, v in (o.get("Labels") or {}).items() if k.startswith("hoplab.")}
        lines.append(f"  {kind} {name} {labels} made during {_culprit(when)}")
    session.config.get_terminal_writer().line("\n".join(lines), red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
