"""A corpus of malformed and hostile topology files: each one is refused with exit 2, a message that
names the file, the line and the key, and nothing is created on the engine.

Every file in tests/corpus/ states what it expects in its first line:

    # expect: <key path> | <message fragment>

A key path ending in '*' is a prefix. Files too big to commit (megabytes, thousands of nodes) are
generated below. The CLI half runs `python -m hoplab up` as a user would, so a traceback anywhere
between argv and the engine fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from hoplab.errors import InputError
from hoplab.model import labels as L
from hoplab.model.load import MAX_FILE_BYTES, MAX_NODES, MAX_YAML_NODES, load, parse
from hoplab.model.plan import build_plan, forward_path
from tests.conftest import ROOT, unique_lab_name

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.yaml"))


@dataclass(frozen=True)
class Expect:
    path: Path
    key: str
    fragment: str

    def key_ok(self, key: str) -> bool:
        return key.startswith(self.key[:-1]) if self.key.endswith("*") else key == self.key


def expectation(path: Path) -> Expect:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("# expect: ") and "|" in first, f"{path.name}: no '# expect:' line"
    key, fragment = (part.strip() for part in first.removeprefix("# expect: ").split("|", 1))
    return Expect(path, key, fragment)


def refused(path: Path) -> InputError:
    with pytest.raises(InputError) as info:
        load(path)
    return info.value


def assert_names_file_line_key(e: InputError, expect: Expect) -> None:
    text = str(e)
    assert e.exit_code == 2
    assert e.file == str(expect.path) and text.startswith(f"{expect.path}:{e.line}: "), text
    assert e.line > 0, text
    assert expect.key_ok(e.key) and f": {e.key}: " in text, f"key {e.key!r}, want {expect.key!r}"
    assert expect.fragment in e.message, f"{e.message!r} lacks {expect.fragment!r}"


def test_the_corpus_is_big_enough_and_every_file_says_what_it_expects():
    assert len(CORPUS) >= 30
    for path in CORPUS:
        expectation(path)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_loader_refuses_with_file_line_and_key(path: Path):
    assert_names_file_line_key(refused(path), expectation(path))


def _cli_up(path: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hoplab", "up", "-f", str(path), "--name", name],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.docker
def test_cli_exits_2_without_traceback_and_creates_nothing(engine):
    """Every corpus file through the real command line, four at a time to keep it quick."""

    def one(path: Path) -> str:
        expect = expectation(path)
        name = unique_lab_name("h7c")
        proc = _cli_up(path, name)
        problems = []
        if proc.returncode != 2:
            problems.append(f"exit {proc.returncode}")
        if "Traceback" in proc.stderr + proc.stdout:
            problems.append("traceback")
        if str(path) not in proc.stderr or expect.key.rstrip("*") not in proc.stderr:
            problems.append("file or key not named")
        if engine.api.containers(all=True, filters=L.lab_filter(name)) or engine.api.networks(
            filters=L.lab_filter(name)
        ):
            problems.append("objects created")
        return f"{path.name}: {', '.join(problems)}\n{proc.stderr}" if problems else ""

    with ThreadPoolExecutor(4) as workers:
        failures = [f for f in workers.map(one, CORPUS) if f]
    assert not failures, "\n".join(failures)


# --- generated inputs: too big to commit ---------------------------------------------------------


def test_huge_file_names_the_line_where_the_limit_is_crossed(tmp_path):
    big = tmp_path / "huge.yaml"
    big.write_text("".join(f"x-{i}: {'x' * 1000}\n" for i in range(2 * MAX_FILE_BYTES // 1000)))
    e = refused(big)
    assert "larger than" in e.message and e.key == "(file)"
    assert 1000 < e.line < 1100, e.line  # ~1 KiB lines: the 1 MiB mark falls near line 1030
    assert str(e).startswith(f"{big}:{e.line}: (file): ")


def test_endless_device_is_refused_without_reading_it_all():
    e = refused(Path("/dev/zero"))
    assert "larger than" in e.message and e.line > 0


def test_many_values_without_aliases_count_as_a_bomb(tmp_path):
    many = tmp_path / "many.yaml"
    many.write_text("x-many: [" + ", ".join(["0"] * (MAX_YAML_NODES + 10)) + "]\n")
    assert many.stat().st_size < MAX_FILE_BYTES  # under the byte cap, over the value cap
    e = refused(many)
    assert "YAML bomb" in e.message and e.key == "x-many" and e.line == 1


def test_too_many_nodes_is_refused_before_any_planning(tmp_path):
    nodes = "".join(f"  h{i}: {{networks: [a]}}\n" for i in range(MAX_NODES + 1))
    path = tmp_path / "crowd.yaml"
    path.write_text(
        f"services:\n{nodes}networks:\n  a: {{ipam: {{config: [{{subnet: 10.0.0.0/16}}]}}}}\n"
    )
    e = refused(path)
    assert "at most" in e.message and e.key == "services" and e.line == 1


@pytest.mark.docker
def test_cli_refuses_a_huge_generated_file(engine, tmp_path):
    big = tmp_path / "huge.yaml"
    big.write_bytes(b"# " + b"x" * (MAX_FILE_BYTES + 10) + b"\n")
    name = unique_lab_name("h7c")
    proc = _cli_up(big, name)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{big}:1: (file): file is larger than" in proc.stderr
    assert engine.api.containers(all=True, filters=L.lab_filter(name)) == []


# --- what is NOT an error -------------------------------------------------------------------------

RING = """\
x-hoplab: {name: ring}
services:
  r1: {x-hoplab: {role: router}, networks: [lan1, ab, ca]}
  r2: {x-hoplab: {role: router}, networks: [lan2, ab, bc]}
  r3: {x-hoplab: {role: router}, networks: [lan3, bc, ca]}
  alice: {networks: [lan1]}
  bob: {networks: [lan2]}
  carol: {networks: [lan3]}
networks:
  lan1: {ipam: {config: [{subnet: 10.62.1.0/24}]}}
  lan2: {ipam: {config: [{subnet: 10.62.2.0/24}]}}
  lan3: {ipam: {config: [{subnet: 10.62.3.0/24}]}}
  ab: {ipam: {config: [{subnet: 10.62.0.0/29}]}}
  bc: {ipam: {config: [{subnet: 10.62.0.8/29}]}}
  ca: {ipam: {config: [{subnet: 10.62.0.16/29}]}}
"""


def test_a_ring_of_routers_is_valid_and_its_shortest_paths_never_loop():
    """Decision: a cycle of routers is a valid topology; only explicit routes can make a loop."""
    plan = build_plan(parse(RING, "ring.yaml"))
    for node in plan.nodes:
        for net in plan.networks:
            hops, loops = forward_path(plan, node.name, net.subnet)
            assert not loops, hops
            last = plan.node(hops[-1])
            assert net.name in {i.network for i in last.interfaces}, (node.name, net.name, hops)
            assert len(hops) <= 3  # host -> at most two routers on a ring of three


def test_an_explicit_route_the_long_way_round_a_ring_is_not_a_loop():
    text = RING.replace(
        "r1: {x-hoplab: {role: router}",
        "r1: {x-hoplab: {role: router, routes: [{to: lan2, via: r3}]}",
    )
    plan = build_plan(parse(text, "ring.yaml"))
    hops, loops = forward_path(plan, "alice", plan.network("lan2").subnet)
    assert hops == ["alice", "r1", "r3", "r2"] and not loops


# --- bad command lines ----------------------------------------------------------------------------

BAD_ARGS: list[tuple[list[str], dict[str, str], str]] = [
    # (argv after `hoplab`, extra environment, a fragment of the error)
    ([], {}, "required"),
    (["nosuch"], {}, "invalid choice"),
    (["up", "--bogus"], {}, "unrecognized arguments"),
    (["up", "-f"], {}, "expected one argument"),
    (["up", "--name"], {}, "expected one argument"),
    (["up", "--name", "-x"], {}, "expected one argument"),
    (["status", "--json", "extra"], {}, "unrecognized arguments"),
    (["ls", "extra"], {}, "unrecognized arguments"),
    (["explain"], {}, "required"),
    (["explain", "no-such-exercise"], {}, "unknown exercise"),
    (["run", "--json"], {}, "expected one argument"),
    (["run", "--name", "h7nolab", "no-such-exercise"], {}, "unknown exercise"),
    (["exec", "--name", "h7nolab", "alice"], {}, "no command given"),
    (["up", "-f", "/nonexistent/topology.yaml", "--name", "h7nolab"], {}, "cannot read topology"),
    (["up", "-f", "/", "--name", "h7nolab"], {}, "cannot read topology"),
    (["up", "-f", "/dev/zero", "--name", "h7nolab"], {}, "larger than"),
    (["down", "--name", "x;rm -rf /"], {}, "invalid lab name"),
    (["status", "--name", "a" * 31], {}, "invalid lab name"),
    (["exec", "--name", "$(id)", "alice", "--", "true"], {}, "invalid lab name"),
    (["up", "--name", "Bad Name"], {}, "invalid lab name"),
    (["up", "--name", "h7nolab"], {"HOPLAB_POOL": "8.8.0.0/16"}, "not a private range"),
    (["up", "--name", "h7nolab"], {"HOPLAB_POOL": "pool"}, "HOPLAB_POOL: invalid pool"),
]


@pytest.mark.docker
@pytest.mark.parametrize(
    ("argv", "env", "fragment"),
    BAD_ARGS,
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_bad_command_lines_are_usage_errors_not_tracebacks(engine, argv, env, fragment):
    proc = subprocess.run(
        [sys.executable, "-m", "hoplab", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | env,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert fragment in proc.stderr and "error" in proc.stderr, proc.stderr
    assert engine.api.containers(all=True, filters=L.lab_filter("h7nolab")) == []
    assert engine.api.networks(filters=L.lab_filter("h7nolab")) == []


def test_an_explicit_gateway_is_never_handed_to_a_node():
    """Found by this corpus work: auto addresses used to start at .1 even when .1 was the gateway,
    and Docker then refused to start the node."""
    text = RING.replace("{subnet: 10.62.1.0/24}", "{subnet: 10.62.1.0/24, gateway: 10.62.1.1}")
    plan = build_plan(parse(text, "ring.yaml"))
    gateway = plan.network("lan1").gateway
    assert str(gateway) == "10.62.1.1"
    assert gateway not in {i.address for n in plan.nodes for i in n.interfaces}
