"""A room's capacity at its nodes' memory limits (issue 26): `workshop up` refuses, before it
creates anything, a room whose participants could together overcommit the engine's host."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from hoplab import api
from hoplab.engine.bringup import MEM_LIMIT
from hoplab.errors import InputError
from hoplab.model import labels as L
from hoplab.workshop import placement as P
from hoplab.workshop import room as R
from tests.unit.fake_engine import FakeEngine

MiB, GiB = 2**20, 2**30
POOL = IPv4Network("10.200.0.0/16")


def test_the_rule_budgets_each_node_at_the_engines_memory_limit():
    assert P.memory_bytes(MEM_LIMIT) == P.NODE_MEMORY  # the rule and the nodes agree
    assert [P.memory_bytes(t) for t in ("128m", "1g", "512k", "4096", "lots", "")] == [
        128 * MiB,
        GiB,
        512 << 10,
        4096,
        0,
        0,
    ]
    # 16 GiB at 128 MiB a node is 128 nodes: memory binds before 8 CPUs (560 nodes)
    free = P.Free("e", cpus=8, memory=16 * GiB)
    assert P.free_labs(free, 7) == 128 // 7
    # a node filled to its limit by every participant still fits: labs * 7 * limit <= memory
    assert P.free_labs(free, 7) * 7 * P.NODE_MEMORY <= free.memory
    assert P.refusal(free, 7, 18) == ""
    why = P.refusal(free, 7, 19)
    assert "19 new labs of 7 nodes" in why and "takes 18 more" in why and "128 MiB" in why


def test_workshop_up_refuses_a_room_that_does_not_fit_and_creates_nothing(tiny):
    fake = FakeEngine()
    # 16 nodes at 128 MiB; 2 CPUs make 2 check workers, whose grader labs (3 nodes each) the
    # portal will add: 10 nodes are left, 3 labs of 3 nodes
    fake.machine_size = (2, 2 * GiB)
    R.check_fits(fake, tiny, R.Room("fits", R.numbered_seats(3, "f")))
    with pytest.raises(InputError, match=r"4 new labs of 3 nodes do not fit .* takes 3 more") as e:
        R.check_fits(fake, tiny, R.Room("big", R.numbered_seats(4, "b")))
    assert "2 grader labs are kept for the portal's checks" in str(e.value)
    assert e.value.key == "--participants" and "--engine" in e.value.hint
    assert fake.objects() == ([], [])  # refused before anything was made
    # What already runs counts: with one lab up, only two more fit; the room's own labs are
    # kept, not new, so bringing the same room up again is never refused.
    R.up(fake, tiny, R.Room("mine", R.numbered_seats(1, "m")), pool=POOL)
    R.check_fits(fake, tiny, R.Room("mine", R.numbered_seats(3, "m")))
    with pytest.raises(InputError, match="takes 2 more"):
        R.check_fits(fake, tiny, R.Room("other", R.numbered_seats(3, "o")))


def test_the_rooms_grader_labs_are_reserved_once(tiny):
    """A room sized by the rule stays within it once its portal serves: the grader labs (one per
    check worker, at the nodes' limits) are reserved before they exist and counted as held, not
    reserved again, once they do."""
    fake = FakeEngine()
    fake.machine_size = (2, 2 * GiB)  # 16 nodes; 2 check workers
    room = R.Room("mine", R.numbered_seats(3, "m"))
    assert R.graders_to_come(fake, "mine", 2) == 2
    R.check_fits(fake, tiny, room)  # 9 nodes of labs + 6 of grader labs <= 16
    api.up(tiny, name="gr1-0", labels={L.GRADER: "mine"}, engine=fake, pool=POOL)
    assert R.graders_to_come(fake, "mine", 2) == 1  # the one up is held, not to come
    R.check_fits(fake, tiny, room)  # still 15 nodes in all
    assert R.graders_to_come(fake, "other", 2) == 2  # another room's grader labs are its own
    assert P.check_workers(64) == P.MAX_CHECK_WORKERS  # a big engine's reservation is bounded
    # a room whose labs fit only without its grader labs is refused
    with pytest.raises(InputError, match="grader labs are kept"):
        R.check_fits(fake, tiny, R.Room("mine", R.numbered_seats(4, "m")))
