"""hoplab as a stranger gets it: a wheel, installed into a fresh venv outside the checkout.

One test, in the order a new user goes: build the wheel from a copy of the source tree (so the
shared checkout gets no build/ or egg-info), install it into a new venv in a temp dir, then from
a folder with no compose.yaml bring up the packaged default lab, run an exercise, grade the
reference solution of an assignment, bring a two-seat workshop room up and down, and take the lab
down with zero labelled objects left. Then a project of its own, made by `hoplab init`, with its
own `lab/` package imported by its tests, runs its suite against the wheel with `pytest -n 2`.
A second test brings up a project whose nodes run programs of their own (issue 22) from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hoplab.model import labels as L
from tests.conftest import ROOT, unique_lab_name
from tests.test_node_command import make_project

pytestmark = pytest.mark.docker

# Everything hoplab ships lives in these; the rest of the checkout is not needed to build.
SOURCES = ("pyproject.toml", "README.md", "compose.yaml", "hoplab", "hosts")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".ruff_cache")
# What the user's own venv gets besides the wheel: the test runner and xdist, nothing of ours.
TEST_DEPS = ("pytest>=8", "pytest-xdist>=3")

OWN_LAB_PACKAGE = {
    "lab/__init__.py": '"""The project\'s own package named lab: hoplab must not shadow it."""\n',
    "lab/wire.py": (
        "def frame(text: str) -> str:\n"
        '    """The project\'s own protocol: one line per message."""\n'
        '    return text.strip() + "\\n"\n'
    ),
}
# Records every lab the run gets, whichever worker runs which test, so the test can check each.
OWN_CONFTEST = """\
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _record_lab(request):
    if "hoplab" in request.fixturenames:
        labs = Path(__file__).parent / "labs"
        labs.mkdir(exist_ok=True)
        (labs / request.getfixturevalue("hoplab").name).write_text("")
"""
OWN_TEST = """\
from lab.wire import frame  # the project's own package, not hoplab's source folder


def test_own_package_across_routers(hoplab):
    srv = hoplab.node("srv")
    server = "import socket; s = socket.create_server(('0.0.0.0', 7100)); print('ready', " \\
        "flush=True); c, _ = s.accept(); c.sendall(c.recv(100)[::-1])"
    with srv.start(["python3", "-u", "-c", server], ready="ready"):
        res = hoplab.node("alice").run(
            f"printf {frame('hello')!r} | nc -N -w5 {hoplab.address('srv', 'lan2')} 7100"
        )
    assert res.stdout == frame("hello")[::-1], res
"""


def clean_env(venv: Path) -> dict[str, str]:
    """The user's shell: their venv first on PATH, and nothing of this test run leaking in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "PYTHON", "HOPLAB_", "VIRTUAL_ENV", "COV_"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["COLUMNS"] = "200"
    return env


def sh(argv: list[str | Path], cwd: Path, env: dict[str, str], timeout: float = 240) -> str:
    res = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, f"{argv} exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res.stdout + res.stderr


def leftovers(engine, name: str) -> list[str]:
    f = L.lab_filter(name)
    found = engine.api.containers(all=True, filters=f) + engine.api.networks(filters=f)
    return [obj.get("Name") or obj.get("Names", ["?"])[0] for obj in found]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh venv outside the checkout with the wheel built from this tree installed in it."""
    base = tmp_path_factory.mktemp("wheel")
    src, dist, venv = base / "src", base / "dist", base / "venv"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, symlinks=True, ignore=SKIP)
        else:
            shutil.copy2(path, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    sh([*pip, "wheel", "--no-deps", "-w", dist, src], base, dict(os.environ), timeout=300)
    (wheel,) = dist.glob("hoplab-*.whl")
    sh([sys.executable, "-m", "venv", venv], base, dict(os.environ))
    env = clean_env(venv)
    vpip = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "-q"]
    sh([*vpip, "install", wheel, *TEST_DEPS], base, env, timeout=300)
    return venv, env


def test_the_wheel_works_outside_the_checkout(installed, engine, tmp_path):
    venv, env = installed
    hoplab = venv / "bin" / "hoplab"
    work = tmp_path / "work"
    work.mkdir()
    name, room = unique_lab_name("h7w"), unique_lab_name("h7r")
    seats = [f"{room}-{i:02d}" for i in (1, 2)]
    project = tmp_path / "project"
    labs_file = project / "labs"
    try:
        # The installed package, not the checkout, answers.
        where = sh(
            [venv / "bin" / "python", "-c", "import hoplab; print(hoplab.__file__)"], work, env
        )
        assert str(venv) in where and str(ROOT) not in where, where
        assert not (work / "compose.yaml").exists()

        sh([hoplab, "up", "--name", name], work, env)  # the packaged default lab
        assert {n.name for n in engine.state(name).nodes} >= {"alice", "srv", "r1", "r2"}
        out = sh(
            [hoplab, "run", "--name", name, "--artifacts", work / "art", "ttl-and-traceroute"],
            work,
            env,
        )
        assert "1 passed, 0 failed" in out, out
        sh([hoplab, "assignments", "tcp-echo", "--reference", work / "ref"], work, env)
        out = sh(
            [
                hoplab,
                "check",
                "tcp-echo",
                "--name",
                name,
                "--solution",
                work / "ref" / "tcp_echo.py",
            ],
            work,
            env,
        )
        assert "all checks passed" in out, out

        sh(
            [
                hoplab,
                "workshop",
                "up",
                "--workshop",
                room,
                "--participants",
                "2",
                "--prefix",
                f"{room}-",
            ],
            work,
            env,
        )
        assert all(engine.state(seat).running for seat in seats)
        sh([hoplab, "workshop", "down", "--workshop", room], work, env)
        assert [leftovers(engine, seat) for seat in seats] == [[], []]

        sh([hoplab, "down", "--name", name], work, env)
        assert leftovers(engine, name) == []

        # A project of its own, with a package called lab, tested with the plugin and xdist.
        sh([hoplab, "init", project], work, env)
        for rel, text in OWN_LAB_PACKAGE.items():
            (project / rel).parent.mkdir(exist_ok=True)
            (project / rel).write_text(text)
        (project / "test_own.py").write_text(OWN_TEST)
        (project / "conftest.py").write_text(OWN_CONFTEST)
        out = sh(
            [venv / "bin" / "python", "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider"],
            project,
            env,
            timeout=300,
        )
        assert "3 passed" in out, out
        made = [p.name for p in labs_file.iterdir()]
        assert made and all(leftovers(engine, lab) == [] for lab in made), made
    finally:
        engine.down(name)
        for seat in seats:
            engine.down(seat)
        for lab in [p.name for p in labs_file.iterdir()] if labs_file.is_dir() else []:
            engine.down(lab)


def test_a_project_with_programs_on_its_nodes_from_the_wheel(installed, engine, tmp_path):
    """Issue 22's project, from the installed wheel: a default node with a command and a
    healthcheck on it, a FROM scratch server, and an exec that reads a file the program wrote."""
    venv, env = installed
    hoplab = venv / "bin" / "hoplab"
    project = tmp_path / "project"
    project.mkdir()
    make_project(project)  # tests/test_node_command.py's topology and images
    name = unique_lab_name("h22w")
    try:
        out = sh([hoplab, "up", "--name", name], project, env, timeout=600)
        assert f"lab {name}" in out, out  # up returned: listen's and srv's healthchecks passed
        sent = "echo from-the-wheel | socat -u - UDP:listen:9000"
        sh([hoplab, "exec", "--name", name, "bob", "--", "sh", "-c", sent], project, env)
        wait = "for i in $(seq 50); do grep -q from-the-wheel got && exit; sleep 0.1; done; exit 1"
        sh([hoplab, "exec", "--name", name, "listen", "--", "sh", "-c", wait], project, env)
        res = subprocess.run(
            [hoplab, "exec", "--name", name, "listen", "--", "cat", "/tmp/got", "/tmp/said"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res
        assert res.stdout == "from-the-wheel\nhello from 65534 in /tmp\n", res.stdout
        probe = [hoplab, "exec", "--name", name, "srv", "--", "/udphello", "probe", "7000"]
        assert "note" not in sh(probe, project, env)  # in the scratch image, where it lives
        sh([hoplab, "down", "--name", name], project, env)
        assert leftovers(engine, name) == []
    finally:
        engine.down(name)
