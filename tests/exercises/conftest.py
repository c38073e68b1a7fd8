"""The exercises' own fixture: the default lab with its IPv6 taken out, for the ENV tests.

The default lab is dual-stack; an exercise that needs IPv6 must report ENV, never FAIL, on a lab
without it. This lab is compose.yaml as it is, minus `enable_ipv6` and the IPv6 ipam entries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import yaml

from hoplab import lifecycle
from hoplab.checks import Status
from hoplab.engine.engine import Engine
from hoplab.exercises.base import Exercise
from hoplab.exercises.runner import run_one
from hoplab.model.load import parse
from hoplab.runtime.lab import Lab
from tests.conftest import COMPOSE, unique_lab_name


def ipv4_only(text: str) -> str:
    """compose.yaml without IPv6: no enable_ipv6, no IPv6 ipam entries, no ipv6_address."""
    doc = yaml.safe_load(text)
    for net in doc["networks"].values():
        assert net.pop("enable_ipv6", False), "compose.yaml's networks are no longer dual-stack"
        net["ipam"]["config"] = [c for c in net["ipam"]["config"] if ":" not in c["subnet"]]
    for svc in doc["services"].values():
        for att in (svc.get("networks") or {}).values():
            (att or {}).pop("ipv6_address", None)
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.fixture(scope="session")
def v4_lab(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The default lab's shape over IPv4 only, up once for the session; leave it as found."""
    name = unique_lab_name("v4")
    topo = parse(ipv4_only(COMPOSE.read_text()), "compose-ipv4.yaml")
    assert not any(n.subnet6 for n in topo.networks), "IPv6 left in the IPv4 lab"
    try:
        lifecycle.up(engine, topo, name, lambda *a: None, lambda m: None)
        running = Lab.attach(engine, name)
        running.artifacts = tmp_path_factory.mktemp("artifacts-v4")
        yield running
    finally:
        engine.down(name)


def ipv6_exercise_tests(exercise: Exercise) -> tuple[Callable[[Lab], None], Callable[[Lab], None]]:
    """The two tests every IPv6 exercise has: it passes on the default lab (dual-stack), and is
    ENV, never FAIL, on v4_lab, with a hint that asks for a dual-stack lab. A test module binds
    them to its own names: `test_passes_on_default_lab, test_env_on_a_lab_without_ipv6 = ...`.
    """

    def test_passes_on_default_lab(lab: Lab) -> None:
        result = run_one(lab, exercise, lab.artifacts)
        assert result.status is Status.PASS, result.checks

    def test_env_on_a_lab_without_ipv6(v4_lab: Lab) -> None:
        result = run_one(v4_lab, exercise, v4_lab.artifacts)
        assert result.status is Status.ENV, result.checks
        assert "dual-stack" in result.checks[0].hint

    return test_passes_on_default_lab, test_env_on_a_lab_without_ipv6
