"""The layer rules hold: each contract in pyproject's [tool.importlinter] fails on a violation.

`make lint` runs lint-imports on the tree; these tests prove that it would catch a break. Each one
copies the package into a temporary folder, adds one forbidden import, and runs lint-imports on
the copy (found first on PYTHONPATH), with the project's own contracts. No Docker.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).parent / "lint-imports"

# (contract id, file in the package, the import added, the chain lint-imports must name)
VIOLATIONS = [
    (
        "layers",
        "model/topology.py",
        "from hoplab.engine import engine",
        "hoplab.model.topology -> hoplab.engine.engine",
    ),
    (
        "layers",
        "grading/tcp_echo.py",
        "from hoplab.exercises import one_port_many_clients",
        "hoplab.grading.tcp_echo -> hoplab.exercises.one_port_many_clients",
    ),
    (
        "layers",
        "report.py",
        "from hoplab.exercises import runner",
        "hoplab.report -> hoplab.exercises.runner",
    ),
    (
        "no-cycles",
        "grading/sandbox.py",
        "from hoplab.grading.base import Assignment",
        ".sandbox -> .base",  # lint-imports names siblings relative to their package
    ),
    ("docker-in-engine", "exercises/nat.py", "import docker", "hoplab.exercises.nat -> docker"),
    ("docker-in-engine", "runtime/evidence.py", "import requests", "hoplab.runtime.evidence"),
    ("rich-in-front", "grading/outputs.py", "import rich.table", "hoplab.grading.outputs"),
    ("model-is-pure", "model/plan.py", "from hoplab import resources", "hoplab.model.plan"),
    ("exercises-use-runtime", "exercises/nat.py", "from hoplab.engine import engine", "exercises"),
]


def _copy(tmp: Path) -> Path:
    """The package as `hoplab` under tmp/src, and the project's contracts in tmp/pyproject.toml."""
    src = tmp / "src"
    shutil.copytree(
        ROOT / "hoplab", src / "hoplab", symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp / "pyproject.toml")
    return src / "hoplab"


def _lint(tmp: Path, contract: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tmp / "src")}  # the copy, before the editable install
    return subprocess.run(
        [str(LINT), "--no-cache", "--contract", contract],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _add_import(path: Path, line: str) -> None:
    """After `from __future__ import annotations`, where an import is legal in every module."""
    text = path.read_text()
    marker = "from __future__ import annotations\n"
    assert marker in text, f"{path} has no future import to anchor on"
    path.write_text(text.replace(marker, f"{marker}{line}  # noqa\n", 1))


@pytest.mark.parametrize(
    ("contract", "module", "line", "chain"),
    VIOLATIONS,
    ids=[f"{c}:{m}" for c, m, _, _ in VIOLATIONS],
)
def test_lint_imports_fails_on_a_violation(tmp_path, contract, module, line, chain):
    pkg = _copy(tmp_path)
    before = _lint(tmp_path, contract)
    assert chain not in before.stdout, f"the untouched copy already breaks it:\n{before.stdout}"

    _add_import(pkg / module, line)
    after = _lint(tmp_path, contract)
    assert after.returncode != 0, f"{contract} kept despite `{line}` in {module}:\n{after.stdout}"
    assert "BROKEN" in after.stdout
    assert chain in after.stdout, after.stdout


def test_every_contract_in_pyproject_is_proven_here():
    """A contract without a test here could be a contract that never fails."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    declared = {c["id"] for c in config["contracts"]}
    assert declared == {v[0] for v in VIOLATIONS}


def test_the_copy_is_what_lint_imports_reads(tmp_path):
    """Guard for the tests above: the violation must land in the analysed tree, not the clone."""
    pkg = _copy(tmp_path)
    probe = pkg / "model" / "topology.py"
    _add_import(probe, "from hoplab.engine import engine")
    result = _lint(tmp_path, "layers")
    assert str(ROOT / "hoplab") not in result.stdout
    assert "hoplab.model.topology -> hoplab.engine.engine" in result.stdout
    assert "hoplab.model.topology -> hoplab.engine.engine" not in _lint(ROOT, "layers").stdout


def test_registries_list_every_exercise_and_assignment_module_once():
    """The catalogues are explicit tuples: a module that is written but not registered (or
    registered twice) is caught here rather than silently missing from `hoplab list`."""
    import pkgutil

    from hoplab import exercises, grading

    machinery = {"base", "runner", "grader", "outputs", "sandbox"}
    for package, catalogue, attr in (
        (exercises, exercises.CATALOGUE, "EXERCISE"),
        (grading, grading.CATALOGUE, "ASSIGNMENT"),
    ):
        modules = [
            m.name
            for m in pkgutil.iter_modules(package.__path__)
            if not m.ispkg and m.name not in machinery
        ]
        registered = [
            getattr(importlib.import_module(f"{package.__name__}.{m}"), attr) for m in modules
        ]
        assert sorted(id(x) for x in registered) == sorted(id(x) for x in catalogue), package
        names = [x.name for x in catalogue]
        assert len(names) == len(set(names)), names


def test_catalogues_and_report_import_no_docker_rich_or_dpkt():
    """`hoplab list` and `hoplab assignments` read the catalogues; neither may pay for docker
    (or rich, dpkt) at import time. A fresh interpreter, so nothing is imported already."""
    probe = (
        "import sys\n"
        "import hoplab.exercises as e, hoplab.grading as g\n"
        "import hoplab.exercises.runner, hoplab.grading.grader, hoplab.runtime.evidence\n"
        "assert len(e.catalogue()) >= 16 and len(g.catalogue()) >= 6\n"
        "print(sorted(m for m in ('docker', 'requests', 'rich', 'dpkt') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_label_keys_are_spelled_only_in_model_labels():
    """A label key spelled twice can drift, and a lab would no longer be found again: every
    module takes its keys from hoplab.model.labels. Docstrings may name them; code may not."""
    import ast
    import re

    from hoplab.model import labels

    keys = {v for k, v in vars(labels).items() if k.isupper() and isinstance(v, str)}
    dashed = re.compile(r"^hoplab\.[a-z0-9]+-[a-z0-9-]+")  # no module name has a dash
    found = []
    for path in sorted((ROOT / "hoplab").rglob("*.py")):
        if path == ROOT / "hoplab" / "model" / "labels.py" or "assignments" in path.parts:
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            text = node.value
            if id(node) in docstrings:
                continue
            if text in keys or text.split("=", 1)[0] in keys or dashed.match(text):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text!r}")
    assert not found, "use hoplab.model.labels instead:\n" + "\n".join(found)
