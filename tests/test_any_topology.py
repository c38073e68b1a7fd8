"""The catalogue on a topology with other names and another shape (tests/topologies/chain.yaml:
three routers in a chain, no multi-homed host, no smaller MTU), on the real Docker Engine.

The exercises whose needs the chain meets run on the nodes cast into their roles and PASS; the
others report ENV naming what the chain lacks, never FAIL and never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hoplab import exercises
from hoplab.checks import Status
from hoplab.engine.engine import Engine
from hoplab.exercises.runner import run_all
from hoplab.runtime.lab import Lab
from tests.conftest import ROOT, bring_up, unique_lab_name

pytestmark = pytest.mark.docker

CHAIN = ROOT / "tests" / "topologies" / "chain.yaml"
# What the chain lacks, by exercise: words the ENV result's need must contain.
LACKS = {
    "socket-is-address-protocol-port": "multi-homed host",
    "bind-scope": "multi-homed host",
    "mtu-and-fragmentation": "smaller MTU",
    "no-fragmenting-routers": "smaller MTU",
}


@pytest.fixture(scope="module")
def chain_lab(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    name = unique_lab_name("chain")
    try:
        running = bring_up(engine, name, CHAIN)
        yield running
    finally:
        engine.down(name)


def test_the_catalogue_passes_where_it_fits_and_names_the_need_where_not(
    chain_lab: Lab, tmp_path: Path
) -> None:
    assert {n.name for n in chain_lab.nodes} == {"gw1", "gw2", "gw3", "ann", "ben", "cy", "web"}
    results = {r.name: r for r in run_all(chain_lab, exercises.catalogue(), tmp_path)}
    assert len(results) == 20
    for name, result in results.items():
        if name in LACKS:
            assert result.status is Status.ENV, (name, result.checks)
            (only,) = result.checks
            assert LACKS[name] in only.expected and only.name == f"needs {only.expected}"
            assert only.observed and only.hint, only
        else:
            assert result.status is Status.PASS, (name, result.checks)
    # The routed lessons really crossed the chain: three routers between west and east.
    trace = results["ttl-and-traceroute"].checks[0]
    assert "3 routers (gw1, gw2, gw3)" in trace.expected, trace
