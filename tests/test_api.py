"""The public API (hoplab.up/attach/down), hoplab init, and the import-cost rules.

Labs come up on the real engine from a Compose-shaped dict; import rules are checked in fresh
interpreters by listing sys.modules (never by timing, which belongs in bench/).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import hoplab
from hoplab.cli import init as cli_init
from hoplab.cli import workshop as cli_workshop
from hoplab.errors import Cancelled, HoplabError, InputError
from hoplab.model import labels as L
from hoplab.resources import default_lab
from tests.conftest import unique_lab_name

TINY = {
    "services": {
        "r": {"x-hoplab": {"role": "router"}, "networks": ["a", "b"]},
        "h1": {"networks": ["a"]},
        "h2": {"networks": ["b"]},
    },
    "networks": {
        "a": {"ipam": {"config": [{"subnet": "10.5.1.0/24"}]}},
        "b": {"ipam": {"config": [{"subnet": "10.5.2.0/24"}]}},
    },
}
HEAVY = ("docker", "requests", "rich", "yaml", "dpkt", "hoplab.runtime", "hoplab.exercises")


def leftovers(engine, name: str) -> tuple[list, list]:
    f = L.lab_filter(name)
    return engine.api.containers(all=True, filters=f), engine.api.networks(filters=f)


def loaded_after(code: str) -> list[str]:
    """Run code in a fresh interpreter; the heavy modules it loaded (None marks are not loads)."""
    probe = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import json, sys
        heavy = {HEAVY!r}
        print(json.dumps(sorted(m for m, mod in sys.modules.items() if mod is not None
                                and any(m == h or m.startswith(h + ".") for h in heavy))))
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd="/"
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


# --- import cost: what each entry point loads -------------------------------------------------


def test_import_hoplab_loads_nothing_heavy_and_exports_lazily():
    assert loaded_after("import hoplab") == []
    assert "hoplab.runtime.lab" in loaded_after("import hoplab; hoplab.Lab")  # on first use
    assert set(hoplab.__all__) >= {"up", "attach", "down", "topology", "Lab", "HoplabError"}
    with pytest.raises(AttributeError):
        hoplab.no_such_name  # noqa: B018


def test_help_and_parser_load_no_docker_rich_or_exercises():
    code = """
    from hoplab.cli import main
    try:
        main(["--help"])
    except SystemExit:
        pass
    """
    assert loaded_after(code) == []


@pytest.mark.docker
def test_ls_talks_to_the_engine_without_loading_ssh_support():
    code = """
    import sys
    from hoplab.cli import main
    assert main(["ls"]) == 0
    assert "paramiko" not in sys.modules and "docker" in sys.modules
    """
    loaded_after(code)


def test_pytest_plugin_module_imports_nothing_heavy():
    assert loaded_after("import hoplab.plugin") == []


def test_workshop_defaults_shown_in_help_are_the_rooms():
    from hoplab.workshop import room

    assert (cli_workshop.DEFAULT_NAME, cli_workshop.PARALLEL) == (room.DEFAULT_NAME, room.PARALLEL)


# --- Ctrl-C from the first import on ----------------------------------------------------------

INTERRUPT_AT = """
import sys

class CtrlC:
    '''Raise KeyboardInterrupt when {module} is imported: what a Ctrl-C there does.'''
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, CtrlC())
from hoplab.cli import main
sys.exit(main({argv!r}))
"""


@pytest.mark.parametrize(
    ("module", "argv"),
    [
        ("hoplab.cli.commands", ["ls"]),
        ("argparse", ["--help"]),
        ("docker", ["ls"]),
        ("rich", ["ls"]),
        ("yaml", ["status", "--name", "h7nolab"]),
        ("hoplab.exercises", ["list"]),
    ],
)
def test_ctrl_c_during_any_import_exits_130_without_traceback(module, argv):
    res = subprocess.run(
        [sys.executable, "-c", INTERRUPT_AT.format(module=module, argv=argv)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 130, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    assert "interrupted" in res.stderr, res.stderr


# --- topologies built in code -----------------------------------------------------------------


def test_a_dict_goes_through_the_same_loader_as_a_file():
    topo = hoplab.topology(TINY)
    assert [n.name for n in topo.nodes] == ["r", "h1", "h2"]
    assert [n.name for n in topo.routers] == ["r"]
    assert hoplab.topology(topo) is topo
    assert {"alice", "srv", "r1"} <= {n.name for n in hoplab.topology(default_lab()).nodes}


@pytest.mark.parametrize(
    ("mutate", "key", "text"),
    [
        (lambda d: d["services"]["h1"].update(privileged=True), "services.h1.privileged", ""),
        (
            lambda d: d["services"]["h1"].update(networks={"a": {"ipv4_address": "10.9.9.9"}}),
            "services.h1.networks.a.ipv4_address",
            "outside",
        ),
        (lambda d: d["networks"].pop("b"), "services.r.networks", "b"),
        (lambda d: d["services"]["h1"].update(networks=[object()]), "(top level)", "Compose"),
        (lambda d: d["services"]["h1"].update(me=d), "(top level)", "contains itself"),
    ],
)
def test_a_bad_dict_is_an_input_error_naming_the_key(mutate, key, text):
    doc = json.loads(json.dumps(TINY))
    mutate(doc)
    with pytest.raises(InputError) as err:
        hoplab.topology(doc)
    assert err.value.exit_code == 2
    assert key in err.value.message and text in err.value.message, err.value.message


# --- up / attach / down on the real engine ----------------------------------------------------


@pytest.mark.docker
def test_up_as_a_context_manager_routes_and_leaves_nothing(engine):
    name = unique_lab_name("h7api")
    events: list[str] = []
    try:
        with hoplab.up(TINY, name, engine=engine, progress=lambda p, d, t: events.append(p)) as lab:
            assert isinstance(lab, hoplab.Lab) and lab.owned
            assert lab.report.action == "created" and lab.plan.lab == name
            assert {n.name for n in lab.nodes} == {"r", "h1", "h2"}
            res = lab.node("h1").run(["ping", "-n", "-c1", "-W5", lab.address("h2")])
            assert res.ok and "ttl=63" in res.out, res  # one router on the way
            assert events, "progress callback was never called"
            same = hoplab.up(TINY, name, engine=engine)  # a matching lab is left as it is
            assert same.report.action == "unchanged" and same.address("h2") == lab.address("h2")
            again = hoplab.attach(name, engine=engine)
            with again:  # someone else's lab: leaving the block does not take it down
                assert not again.owned
            assert engine.state(name).running
        assert leftovers(engine, name) == ([], [])
        assert hoplab.down(name, engine=engine) == (0, 0)  # safe to call twice
    finally:
        engine.down(name)


@pytest.mark.docker
def test_down_removes_an_attached_lab_and_attach_refuses_a_missing_one(engine):
    name = unique_lab_name("h7api")
    try:
        lab = hoplab.up(TINY, name, engine=engine, labels={L.OWNER: "api-test"})
        assert engine.state(name).owner == "api-test"
        assert hoplab.attach(name, engine=engine).address("h1") == lab.address("h1")
        containers, networks = hoplab.down(name, engine=engine)
        assert (containers, networks) == (3, 2)
        assert leftovers(engine, name) == ([], [])
        with pytest.raises(HoplabError, match="not running"):
            hoplab.attach(name, engine=engine)
    finally:
        engine.down(name)


@pytest.mark.docker
def test_a_cancelled_bring_up_rolls_back_to_nothing(engine):
    name = unique_lab_name("h7api")
    stop = threading.Event()
    stop.set()  # what a room does on Ctrl-C: labs in flight see it and roll back
    try:
        with pytest.raises(Cancelled):
            hoplab.up(TINY, name, engine=engine, cancel=stop)
        assert leftovers(engine, name) == ([], [])
    finally:
        engine.down(name)


@pytest.mark.docker
def test_bad_input_reaches_no_engine_and_creates_nothing(engine):
    name = unique_lab_name("h7api")
    doc = json.loads(json.dumps(TINY))
    doc["services"]["h1"]["cap_add"] = ["SYS_ADMIN"]
    with pytest.raises(InputError):
        hoplab.up(doc, name, engine=engine)
    with pytest.raises(InputError, match="invalid lab name"):
        hoplab.up(TINY, "Bad Name;", engine=engine)
    with pytest.raises(InputError, match="pool"):
        hoplab.up(TINY, name, engine=engine, pool="8.8.0.0/16")
    assert leftovers(engine, name) == ([], [])


# --- hoplab init and the assignment files -----------------------------------------------------


def run_cli(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hoplab", *argv], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_init_writes_the_default_lab_and_an_example_test(tmp_path):
    target = tmp_path / "new" / "project"
    res = run_cli("init", str(target))
    assert res.returncode == 0, res.stderr
    assert (target / "compose.yaml").read_text() == default_lab().read_text()
    example = (target / cli_init.TEST_FILE).read_text()
    assert example == cli_init.EXAMPLE_TEST and "def test_" in example
    compile(example, cli_init.TEST_FILE, "exec")  # it is Python


def test_init_refuses_to_overwrite_and_then_writes_nothing(tmp_path):
    (tmp_path / "compose.yaml").write_text("mine\n")
    res = run_cli("init", str(tmp_path))
    assert res.returncode == 2
    assert "compose.yaml exists already" in res.stderr and "Traceback" not in res.stderr
    assert (tmp_path / "compose.yaml").read_text() == "mine\n"
    assert not (tmp_path / cli_init.TEST_FILE).exists()  # nothing half-written
    (tmp_path / "file").write_text("")
    res = run_cli("init", str(tmp_path / "file"))
    assert res.returncode == 2 and "not a directory" in res.stderr


def test_assignments_give_the_starter_and_the_reference(tmp_path):
    from hoplab import grading

    a = grading.select("tcp-echo")
    assert run_cli("assignments", "tcp-echo", "--reference", str(tmp_path / "ref")).returncode == 0
    assert (tmp_path / "ref" / a.program).read_bytes() == a.solution.read_bytes()
    assert run_cli("assignments", "tcp-echo", "--starter", str(tmp_path)).returncode == 0
    assert (tmp_path / a.program).read_bytes() == a.starter.read_bytes()
    again = run_cli("assignments", "tcp-echo", "--reference", str(tmp_path))
    assert again.returncode == 2 and "exists already" in again.stderr
    assert (tmp_path / a.program).read_bytes() == a.starter.read_bytes()
