"""A room's capacity at its nodes' memory limits (issue 26): `workshop up` refuses, before it
creates anything, a room whose participants could together overcommit the engine's host."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from hoplab.engine.bringup import MEM_LIMIT
from hoplab.errors import InputError
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
    fake.machine_size = (2, 1 * GiB)  # 8 nodes at 128 MiB: 2 labs of 3 nodes
    R.check_fits(fake, tiny, R.Room("fits", R.numbered_seats(2, "f")))
    with pytest.raises(InputError, match=r"3 new labs of 3 nodes do not fit .* takes 2 more") as e:
        R.check_fits(fake, tiny, R.Room("big", R.numbered_seats(3, "b")))
    assert e.value.key == "--participants" and "--engine" in e.value.hint
    assert fake.objects() == ([], [])  # refused before anything was made
    # What already runs counts: with one lab up, only one more fits; the room's own labs are
    # kept, not new, so bringing the same room up again is never refused.
    R.up(fake, tiny, R.Room("mine", R.numbered_seats(1, "m")), pool=POOL)
    R.check_fits(fake, tiny, R.Room("mine", R.numbered_seats(2, "m")))
    with pytest.raises(InputError, match="takes 1 more"):
        R.check_fits(fake, tiny, R.Room("other", R.numbered_seats(2, "o")))
