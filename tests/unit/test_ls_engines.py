"""`hoplab ls --engine ...`: every lab of every engine, read from labels, with an ENGINE column.

No Docker here (DOCKER_HOST points nowhere): fake engines stand for reachable ones, and a socket
that does not exist is a real unreachable engine. The real two-engine listing is proved in
tests/test_engines.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from ipaddress import IPv4Network

import pytest

from hoplab import api
from hoplab.cli import commands
from hoplab.engine import engines as E
from hoplab.engine.engines import Reached, Size
from hoplab.workshop import room as R
from hoplab.workshop import spread as S
from tests.unit.fake_engine import FakeEngine

GB = 2**30
POOL = IPv4Network("10.200.0.0/16")


def reached(name: str, up: bool = True) -> Reached:
    if not up:
        return Reached(name, error="connection refused")
    return Reached(name, FakeEngine(), size=Size(cpus=2, memory=8 * GB, labs=0, nodes=0))


@pytest.fixture
def two(tiny) -> dict[str, FakeEngine]:
    """e1 holds a room lab and a lab of nobody's room; e2 one room lab."""
    fakes = {"e1": FakeEngine(), "e2": FakeEngine()}
    room = R.Room("ws", R.numbered_seats(2, "p"))
    S.up([reached("e1"), reached("e2")], tiny, room, pool=POOL, engine_for=lambda r: fakes[r.name])
    api.up(tiny, "solo", engine=fakes["e1"], pool=IPv4Network("10.201.0.0/16"))
    return fakes


def test_without_a_room_every_lab_of_every_engine_is_listed_and_a_dead_one_says_so(two):
    parts = S.status(
        [reached("e1"), reached("e2"), reached("e3", up=False)],
        None,
        engine_for=lambda r: two[r.name],
    )
    assert [p.engine for p in parts] == ["e1", "e2", "e3"]
    assert sorted(lab.name for lab in parts[0].labs) == ["p01", "solo"]
    assert [lab.name for lab in parts[1].labs] == ["p02"]
    assert parts[2].labs == [] and parts[2].error == "unreachable: connection refused"
    # with a room, only its labs: the same reading `workshop status` does
    room = S.status([reached("e1"), reached("e2")], "ws", engine_for=lambda r: two[r.name])
    assert [[lab.name for lab in p.labs] for p in room] == [["p01"], ["p02"]]


def test_ls_with_engines_prints_an_engine_column_and_exits_1_for_an_unreachable_one(
    two, monkeypatch, capsys, tmp_path
):
    given: list[list[str]] = []

    def fake_reach(names: list[str], measure: bool = True) -> list[Reached]:
        given.append(names)
        return [reached(n, up=n in two) for n in names]

    status = S.status
    monkeypatch.setattr(E, "reach", fake_reach)
    monkeypatch.setattr(S, "status", lambda r, room: status(r, room, lambda x: two[x.name]))
    listing = tmp_path / "engines.txt"
    listing.write_text("e1 labs=3\ne3\n")
    code = commands.dispatch(["ls", "--engines", str(listing), "--engine", "e2", "--engine", "e1"])
    out, err = capsys.readouterr()
    assert given == [["e1", "e3", "e2"]]  # file lines first, each engine once
    assert code == 1, out + err
    rows = [line for line in out.splitlines() if line.startswith("│")]
    cells = [[c.strip() for c in row.strip("│").split("│")] for row in rows]
    assert [c[:2] for c in cells] == [
        ["e1", "p01"],
        ["e1", "solo"],
        ["e3", "unreachable"],
        ["e2", "p02"],
    ]
    assert "engine" in out.splitlines()[2] and "engine e3" in err and "connection refused" in err
    assert commands.dispatch(["ls", "--engine", "e1", "--engine", "e2"]) == 0
    assert "unreachable" not in capsys.readouterr().out


def test_ls_at_an_engine_that_is_not_there_lists_it_unreachable_and_exits_1(tmp_path):
    dead = f"unix://{tmp_path}/none.sock"
    res = subprocess.run(
        [sys.executable, "-m", "hoplab", "ls", "--engine", dead],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1, res.stdout + res.stderr
    assert "unreachable" in res.stdout and "Traceback" not in res.stderr
    assert f"engine {dead}" in res.stderr.replace("\n", "")
    bad = tmp_path / "engines.txt"
    bad.write_text("local labs=lots\n")
    res = subprocess.run(
        [sys.executable, "-m", "hoplab", "ls", "--engines", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and f"{bad}:1" in res.stderr, res.stderr


def test_building_the_ls_parser_with_engine_options_loads_nothing_heavy():
    probe = (
        "import json, sys\n"
        "from hoplab.cli import main\n"
        "try:\n"
        "    main(['ls', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('docker', 'requests', 'rich', 'yaml', 'hoplab.workshop', 'hoplab.engine')\n"
        # the engine package's docstring and its transport switch import only os and sys
        "light = ('hoplab.engine', 'hoplab.engine.transport')\n"
        "print(json.dumps(sorted(m for m, mod in sys.modules.items() if mod is not None\n"
        "      and m not in light and any(m == h or m.startswith(h + '.') for h in heavy))))\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "--engine URL" in res.stdout and "--engines FILE" in res.stdout
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []


def test_serve_with_no_reachable_engine_says_so_and_issues_nothing(tmp_path):
    dead = f"unix://{tmp_path}/none.sock"
    res = subprocess.run(
        [sys.executable, "-m", "hoplab", "workshop", "serve", "--issue-only", "--engine", dead],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOPLAB_STATE": str(tmp_path / "state")},
    )
    assert res.returncode == 1, res.stderr
    assert "not served" in res.stderr and "no engine of the room can be reached" in res.stderr
    assert not (tmp_path / "state").exists()
