"""The real Engine and the fake both implement EngineAPI, with the same signatures, so that a
test passing on the fake says something about code that runs on Docker; and no docker-py object
crosses the boundary: not in the Protocol, not in any signature above the engine. Also the
engine's per-network locks (moby#42119), which need no Docker to check."""

from __future__ import annotations

import ast
import inspect
import re
import threading
import typing
from collections.abc import Iterator
from pathlib import Path

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
        "owners",
        "memory",
        "machine",
        "survey",
        "ensure_image",
        "ensure_app_images",
        "up",
        "down",
        "remove_host_rules",
        "netem_missing",
        "apply_impairments",
        "change_impairment",
        "impairments",
        "container",
        "exec_target",
        "exec_stream",
        "run",
        "put_file",
        "get_file",
        "app_log",
        "processes",
        "restart",
        "shell",
        "open_tty",
        "resize_tty",
        "kill_tty",
        "segment",
        "tap",
        "untap",
    }


def test_the_interface_hands_out_no_docker_object():
    """No attribute (the raw client and API were two), and no docker type in any signature."""
    assert not [n for n in typing.get_type_hints(EngineAPI) if not n.startswith("_")]

    def docker_types(hint: object) -> list[str]:
        found = [repr(hint)] if getattr(hint, "__module__", "").startswith("docker") else []
        return found + [t for arg in typing.get_args(hint) for t in docker_types(arg)]

    for name in METHODS:
        hints = typing.get_type_hints(getattr(EngineAPI, name))
        assert not [t for h in hints.values() for t in docker_types(h)], name


PACKAGE = Path(__file__).resolve().parents[2] / "hoplab"
DOCKER_WORDS = re.compile(r"\bdocker\b|DockerClient|APIClient|\bEngine\b")
# The public API's `client=` (hoplab.up, attach, from_env) takes a user's docker.DockerClient,
# typed object, and hands it to connect_engine untouched: the one parameter of that name allowed.
PASS_THROUGH = {("hoplab/api.py", "client")}
OPEN = {"Any", "object"}


def _above_the_engine() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "engine" not in p.relative_to(PACKAGE).parts)


def _misuses(path: Path, root: Path = PACKAGE) -> list[str]:
    """Where a module names docker or the concrete Engine in a signature, imports the concrete
    Engine, or reaches for an engine's raw `client` or `api`."""
    tree = ast.parse(path.read_text(), str(path))
    where = path.relative_to(root.parent)
    found = []
    for node in ast.walk(tree):
        notes: list[ast.expr | None] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
            notes += [a.annotation for a in every if a is not None] + [node.returns]
            for a in every:  # a client or api that could hold anything (a client address is str)
                loose = a is not None and (
                    a.annotation is None or ast.unparse(a.annotation) in OPEN
                )
                if loose and a.arg in ("client", "api") and (str(where), a.arg) not in PASS_THROUGH:
                    found.append(f"{where}:{a.lineno}: parameter {a.arg}")
        elif isinstance(node, ast.AnnAssign):
            notes.append(node.annotation)
        for note in notes:
            if note is not None and DOCKER_WORDS.search(ast.unparse(note)):
                found.append(f"{where}:{note.lineno}: annotation {ast.unparse(note)}")
        if isinstance(node, ast.ImportFrom) and node.module == "hoplab.engine.engine":
            found.append(f"{where}:{node.lineno}: imports the concrete Engine")
        if isinstance(node, ast.Attribute) and node.attr in ("client", "api"):
            found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_above_the_engine_receives_a_docker_object():
    """Everything above hoplab.engine is typed against EngineAPI and gets its engine from
    connect_engine; a signature that takes a docker-py object, or an `.api`/`.client` reach
    into an engine, would bring the leak back."""
    assert len(_above_the_engine()) > 60  # the scan sees the package, not an empty folder
    assert [m for p in _above_the_engine() for m in _misuses(p)] == []


def test_the_scan_finds_each_kind_of_leak(tmp_path):
    """The scan above can fail: each way of leaking, written into a probe module, is caught."""
    probe = tmp_path / "hoplab" / "cli" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "from hoplab.engine.engine import Engine\n"
        "def f(client: docker.DockerClient, e: Engine, api: Any, peer: str) -> None:\n"
        "    shell(e.api, 1)\n"
        "x: APIClient | None = None\n"
    )
    found = _misuses(probe, tmp_path / "hoplab")
    assert sorted(found) == [
        "hoplab/cli/probe.py:1: imports the concrete Engine",
        "hoplab/cli/probe.py:2: annotation Engine",
        "hoplab/cli/probe.py:2: annotation docker.DockerClient",
        "hoplab/cli/probe.py:2: parameter api",
        "hoplab/cli/probe.py:3: e.api",
        "hoplab/cli/probe.py:4: annotation APIClient | None",
    ]


@pytest.mark.parametrize("impl", [Engine, FakeEngine])
@pytest.mark.parametrize("name", METHODS)
def test_implementations_match_the_interface(impl, name):
    want = inspect.signature(getattr(EngineAPI, name))
    got = inspect.signature(getattr(impl, name))
    assert list(got.parameters) == list(want.parameters), f"{impl.__name__}.{name}"
    for p in want.parameters.values():
        if p.default is not inspect.Parameter.empty and p.default is not ...:
            assert got.parameters[p.name].default == p.default, f"{impl.__name__}.{name}"


@pytest.fixture
def idle_client() -> Iterator[docker.DockerClient]:
    """A client object makes no connection until it is used: no daemon is needed here."""
    client = docker.DockerClient(base_url="unix:///nonexistent", version="1.41")
    yield client
    client.close()


def test_both_are_engines_at_run_time(idle_client):
    assert isinstance(Engine(idle_client), EngineAPI)
    assert isinstance(FakeEngine(), EngineAPI)


def test_connect_engine_is_the_one_factory(idle_client):
    from hoplab.engine import connect_engine
    from hoplab.errors import HoplabError

    assert isinstance(connect_engine(idle_client), EngineAPI)
    with pytest.raises(TypeError, match="needs a docker.DockerClient, not FakeEngine"):
        connect_engine(FakeEngine())
    with pytest.raises(HoplabError, match="cannot reach the Docker Engine"):
        connect_engine()  # the unit tier's DOCKER_HOST leads nowhere


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
