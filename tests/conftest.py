"""Shared fixtures. Integration tests use the real Docker Engine: if it is unreachable they fail
loudly (connect() raises), they never skip."""

from __future__ import annotations

import itertools
import os
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
