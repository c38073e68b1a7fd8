"""Handing work out so that the per-network endpoint locks (moby#42119) do not queue it."""

from __future__ import annotations

import hoplab
from hoplab.engine.endpoints import spread
from hoplab.model.plan import build_plan


def test_spread_puts_neighbours_on_different_networks_and_keeps_every_item_once():
    items = [("a1", ["lan1"]), ("a2", ["lan1"]), ("a3", ["lan1"]), ("b1", ["lan2"]), ("r", [])]
    out = spread(items, lambda item: item[1])
    assert sorted(out) == sorted(items)
    assert [name for name, _ in out] == ["a1", "b1", "r", "a2", "a3"]  # order within a network kept


def test_a_lans_hosts_no_longer_stand_side_by_side_in_the_start_order():
    doc = {
        "services": {
            **{f"h{i}": {"networks": ["lan1"]} for i in range(4)},
            **{f"k{i}": {"networks": ["lan2"]} for i in range(4)},
            "r": {"x-hoplab": {"role": "router"}, "networks": ["lan1", "lan2"]},
        },
        "networks": {
            "lan1": {"ipam": {"config": [{"subnet": "10.61.1.0/24"}]}},
            "lan2": {"ipam": {"config": [{"subnet": "10.61.2.0/24"}]}},
        },
    }
    plan = build_plan(hoplab.topology(doc), "sp")
    order = spread(plan.nodes, lambda n: [i.network for i in n.interfaces])
    firsts = [n.interfaces[0].network for n in order]
    assert all(
        a != b for a, b in zip(firsts[:8], firsts[1:8], strict=False)
    )  # lan1 has one more: the router
    assert spread([], lambda n: [n]) == []
