"""Fixtures of the fast tier: no Docker daemon, only the model, the engine's pure code and the
in-memory fake engine. `DOCKER_HOST=unix:///nonexistent pytest tests/unit` must pass."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest

from hoplab.model.load import parse
from hoplab.model.topology import Topology
from tests.unit.fake_engine import FakeEngine

# One router between two LANs: three nodes, two networks.
TINY = """\
services:
  r1: {x-hoplab: {role: router}, networks: [a, b]}
  alice: {networks: [a]}
  bob: {networks: [b]}
networks:
  a: {ipam: {config: [{subnet: 10.64.1.0/24}]}}
  b: {ipam: {config: [{subnet: 10.64.2.0/24}]}}
"""


@pytest.fixture(autouse=True)
def no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every unit test at an engine that does not exist: a test that reaches for Docker
    fails here instead of quietly becoming an integration test."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/hoplab-unit-tests.sock")


@pytest.fixture
def tiny() -> Topology:
    return parse(TINY, "tiny.yaml")


@pytest.fixture
def fake() -> FakeEngine:
    return FakeEngine()


@contextlib.contextmanager
def ctrl_c_at_thread_start(k: int) -> Iterator[list[int]]:
    """KeyboardInterrupt in the main thread as its k-th Thread.start returns (the thread runs):
    a Ctrl-C that lands inside an executor's submit. Yields the count of starts so far."""
    real, starts = threading.Thread.start, [0]

    def start(thread: threading.Thread) -> None:
        real(thread)
        if threading.current_thread() is threading.main_thread():
            starts[0] += 1
            if starts[0] == k:
                raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(threading.Thread, "start", start)
        yield starts
