"""The real Engine and the fake both implement EngineAPI, with the same signatures, so that a
test passing on the fake says something about code that runs on Docker. Also the engine's
per-network locks (moby#42119), which need no Docker to check."""

from __future__ import annotations

import inspect
import threading

import docker
import pytest

from hoplab.engine.endpoints import EndpointLocks
from hoplab.engine.engine import Engine
from hoplab.engine.interface import EngineAPI
from tests.unit.fake_engine import FakeEngine

METHODS = [
    name
    for name, member in inspect.getmembers(EngineAPI)
    if inspect.isfunction(member) and not name.startswith("_")
]


def test_the_interface_holds_the_public_engine_surface():
    assert set(METHODS) == {
        "state",
        "labs",
        "labs_labelled",
        "memory",
        "survey",
        "up",
        "down",
        "container",
        "exec_stream",
        "run",
        "put_file",
        "get_file",
    }


@pytest.mark.parametrize("impl", [Engine, FakeEngine])
@pytest.mark.parametrize("name", METHODS)
def test_implementations_match_the_interface(impl, name):
    want = inspect.signature(getattr(EngineAPI, name))
    got = inspect.signature(getattr(impl, name))
    assert list(got.parameters) == list(want.parameters), f"{impl.__name__}.{name}"
    for p in want.parameters.values():
        if p.default is not inspect.Parameter.empty and p.default is not ...:
            assert got.parameters[p.name].default == p.default, f"{impl.__name__}.{name}"


def test_both_are_engines_at_run_time():
    # A client object makes no connection until it is used: no daemon is needed here.
    client = docker.DockerClient(base_url="unix:///nonexistent", version="1.41")
    try:
        assert isinstance(Engine(client), EngineAPI)
    finally:
        client.close()
    assert isinstance(FakeEngine(), EngineAPI)


def test_endpoint_locks_serialize_one_network_and_not_others():
    locks = EndpointLocks()
    inside = threading.Event()
    release = threading.Event()
    entered: list[str] = []

    def hold(nets: list[str], tag: str) -> None:
        with locks.holding(nets):
            entered.append(tag)
            inside.set()
            assert release.wait(10)

    first = threading.Thread(target=hold, args=(["n1", "n2"], "first"))
    first.start()
    assert inside.wait(10)
    # Another network proceeds while n1 is held; n1 itself waits.
    with locks.holding(["n3"]):
        entered.append("n3")
    blocked = threading.Thread(target=hold, args=(["n2"], "second"))
    blocked.start()
    blocked.join(0.1)
    assert entered == ["first", "n3"] and blocked.is_alive()
    release.set()
    first.join(10)
    blocked.join(10)
    assert entered == ["first", "n3", "second"]


def test_the_fast_tier_cannot_reach_docker():
    from hoplab.engine.client import connect
    from hoplab.errors import HoplabError

    with pytest.raises(HoplabError, match="cannot reach the Docker Engine"):
        connect(timeout=2)


def test_the_runtime_works_on_any_engine(tiny):
    """Lab and Node use only EngineAPI: attached to the fake, they read the lab from its labels
    and send commands and files through the interface."""
    from hoplab import lifecycle
    from hoplab.runtime.lab import Lab

    fake = FakeEngine()
    lifecycle.up(fake, tiny, "if1", lambda *a: None, lambda m: None)
    lab = Lab.attach(fake, "if1")
    assert sorted(n.name for n in lab.nodes) == ["alice", "bob", "r1"]
    assert lab.address("r1", "b") == "10.64.2.1"
    lab.node("alice").copy_in(b"print(1)\n", "/tmp/p.py")
    assert lab.node("alice").fetch("/tmp/p.py") == b"print(1)\n"
    assert lab.node("bob").run(["true"]).ok
    assert any(c == "if1-bob" for c, _ in fake.ran)
