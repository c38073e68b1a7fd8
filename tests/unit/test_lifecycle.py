"""Lifecycle: naming a lab, planning against what the engine holds, and planning again when a
racing lab takes a subnet between planning and creation (SubnetTaken)."""

from __future__ import annotations

import re
from ipaddress import IPv4Network

import pytest

from hoplab import lifecycle
from hoplab.errors import InputError, SubnetTaken
from hoplab.model.plan import DEFAULT_POOL
from tests.unit.conftest import TINY
from tests.unit.fake_engine import FakeEngine, Faults

quiet = (lambda *a: None, lambda m: None)


def lab_subnets(fake: FakeEngine, lab: str) -> set[IPv4Network]:
    return {IPv4Network(s) for s in fake.state(lab).networks.values()}


def test_lab_name_prefers_the_flag_then_the_file_then_the_default(tmp_path):
    named = tmp_path / "named.yaml"
    named.write_text("x-hoplab: {name: fromfile}\n" + TINY)
    assert lifecycle.lab_name(named, "flag") == "flag"
    assert lifecycle.lab_name(named, None) == "fromfile"
    assert lifecycle.lab_name(tmp_path / "absent.yaml", None) == "hoplab"


@pytest.mark.parametrize("bad", ["Bad Name", "-x", "a/b", "x" * 200])
def test_a_bad_lab_name_is_an_input_error_before_any_engine_call(tiny, bad):
    with pytest.raises(InputError) as err:
        lifecycle.lab_name(None, bad)
    assert err.value.exit_code == 2 and "--name" in str(err.value)
    fake = FakeEngine()
    with pytest.raises(InputError):
        lifecycle.up(fake, tiny, bad, *quiet)
    assert fake.objects() == ([], [])


def test_planning_moves_subnets_away_from_taken_ones(tiny):
    fake = FakeEngine()
    fake.add_stranger_network("stranger", "10.64.1.0/24")  # the topology's own lan a
    lifecycle.up(fake, tiny, "lc1", *quiet, pool=IPv4Network("10.200.0.0/16"))
    moved = lab_subnets(fake, "lc1")
    assert IPv4Network("10.64.1.0/24") not in moved and IPv4Network("10.64.2.0/24") in moved
    assert any(s.subnet_of(IPv4Network("10.200.0.0/16")) for s in moved)


def test_a_running_lab_keeps_its_subnets_when_planned_again(tiny):
    fake = FakeEngine()
    fake.add_stranger_network("stranger", "10.64.1.0/24")
    lifecycle.up(fake, tiny, "lc2", *quiet)
    before = lab_subnets(fake, "lc2")
    plan, state = lifecycle.make_plan(fake, tiny, "lc2")
    assert {n.subnet for n in plan.networks} == before and state.running


def test_a_subnet_taken_meanwhile_is_planned_again_with_the_winner_in_view(tiny):
    """The first network create loses its subnet to a racer: roll back, plan again, succeed."""
    fake = FakeEngine(faults=Faults(race_subnets=1))
    said: list[str] = []
    result = lifecycle.up(fake, tiny, "lc3", lambda *a: None, said.append)
    assert result.report.action == "created" and fake.state("lc3").running
    assert any("planning lab lc3 again" in m for m in said)
    racer = next(n for n in fake.networks.values() if n["Name"].startswith("racer"))
    taken = IPv4Network(racer["IPAM"]["Config"][0]["Subnet"])
    assert all(not s.overlaps(taken) for s in lab_subnets(fake, "lc3"))


def test_subnets_taken_on_every_attempt_give_up_with_nothing_left(tiny, monkeypatch):
    monkeypatch.setattr(lifecycle, "PLAN_ATTEMPTS", 3)
    fake = FakeEngine(faults=Faults(race_subnets=3))
    with pytest.raises(SubnetTaken) as err:
        lifecycle.up(fake, tiny, "lc4", *quiet)
    assert "run the command again" in err.value.hint
    assert fake.objects("lc4") == ([], [])
    assert len(fake.networks) == 3  # only the three racers, which are not hoplab's


def test_labs_brought_up_together_get_distinct_subnets(tiny):
    """Eight labs of one topology at once on one engine: the planner and the retries sort it."""
    from concurrent.futures import ThreadPoolExecutor

    fake = FakeEngine()
    names = [f"lc5x{i}" for i in range(8)]
    with ThreadPoolExecutor(4) as workers:
        results = list(workers.map(lambda n: lifecycle.up(fake, tiny, n, *quiet), names))
    assert {r.report.action for r in results} == {"created"}
    subnets = [s for n in names for s in lab_subnets(fake, n)]
    assert len(subnets) == 16 and all(
        not a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1 :]
    )


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ("nonsense", "HOPLAB_POOL: invalid pool 'nonsense'"),
        ("10.176.0.1/12", "has host bits set"),
        ("8.8.0.0/16", "HOPLAB_POOL: pool 8.8.0.0/16 is not a private range"),
        ("127.0.0.0/8", "is not a private range"),
        ("169.254.0.0/16", "is not a private range"),
    ],
)
def test_a_bad_subnet_pool_names_where_it_came_from(monkeypatch, raw, said):
    """HOPLAB_POOL, --pool and the API's pool= are read by one parse_pool; each names its key."""
    monkeypatch.setenv("HOPLAB_POOL", raw)
    with pytest.raises(InputError, match=re.escape(said)) as err:
        lifecycle.subnet_pool()
    assert err.value.exit_code == 2 and "10.176.0.0/12" in err.value.hint


def test_the_subnet_pool_comes_from_hoplab_pool_else_the_default(monkeypatch):
    monkeypatch.delenv("HOPLAB_POOL", raising=False)
    assert lifecycle.subnet_pool() == DEFAULT_POOL
    monkeypatch.setenv("HOPLAB_POOL", "10.99.0.0/16")
    assert lifecycle.subnet_pool() == IPv4Network("10.99.0.0/16")
