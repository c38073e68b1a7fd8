"""Placement of a room's labs over engines (pure), and the spread room on two fake engines.

The rule under test: each lab whole on one engine, by free capacity (CPUs, memory, labs already
held, optional labs=/nodes= caps), kept labs stay where they are, an unreachable engine's share
goes to the others, and what does not fit is counted with the reason.
"""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from hoplab.engine.engines import Reached, Size
from hoplab.errors import InputError
from hoplab.workshop import placement as P
from hoplab.workshop import room as R
from hoplab.workshop import spread as S
from tests.unit.conftest import ctrl_c_at_thread_start
from tests.unit.fake_engine import FakeEngine

GB = 2**30
POOL = IPv4Network("10.200.0.0/16")


def big(name: str, **kw) -> P.Free:
    return P.Free(name, cpus=8, memory=64 * GB, **kw)


def test_capacity_rule_takes_the_smallest_of_cpu_memory_and_caps():
    assert P.free_labs(P.Free("a", cpus=2, memory=64 * GB), 7) == 140 // 7
    assert P.free_labs(P.Free("a", cpus=8, memory=1 * GB), 7) == (GB // P.NODE_MEMORY) // 7
    assert P.free_labs(big("a", nodes_cap=30), 7) == 4
    # a given nodes capacity replaces the CPU and memory estimate, both ways
    assert P.free_labs(P.Free("a", cpus=1, memory=GB, nodes_cap=700), 7) == 100
    assert P.free_labs(big("a", labs_cap=3), 7) == 3
    # what the engine already runs counts, whatever room it belongs to
    assert P.free_labs(big("a", labs_cap=3, labs_held=2, nodes_held=14), 7) == 1
    assert P.free_labs(P.Free("a", cpus=2, memory=64 * GB, nodes_held=139), 7) == 0
    assert P.free_labs(big("a", labs_cap=1, labs_held=5), 7) == 0  # never negative


def test_new_labs_spread_evenly_and_a_bigger_engine_takes_more():
    labs = [f"p{i}" for i in range(6)]
    even = P.place(labs, [big("a"), big("b")], 7)
    assert len(even.on("a")) == 3 and len(even.on("b")) == 3 and not even.unplaced
    uneven = P.place(labs, [big("a", labs_cap=2), big("b", labs_cap=4)], 7)
    assert len(uneven.on("a")) == 2 and len(uneven.on("b")) == 4 and not uneven.unplaced


def test_kept_labs_stay_and_the_rest_fill_around_them():
    out = P.place(
        ["x", "y", "z"], [big("a", labs_cap=2, labs_held=1), big("b", labs_cap=2)], 3, {"x": "a"}
    )
    assert out.where["x"] == "a" and not out.unplaced
    # y goes to the freer b; z then finds a tie (1 free each) and takes the first engine given
    assert out.on("a") == ["x", "z"] and out.on("b") == ["y"]


def test_what_does_not_fit_is_counted_with_why():
    out = P.place(["a1", "a2", "a3"], [big("e1", labs_cap=1), big("e2", labs_cap=1)], 7)
    assert out.unplaced == ("a3",)
    assert "e1: 1 free" in out.why and "labs=" in out.why
    none = P.place(["a1"], [], 7)
    assert none.unplaced == ("a1",) and "no engine" in none.why


def test_engines_file_parses_caps_and_refuses_bad_lines_with_line_and_key():
    lines = P.parse_engines("local\n# comment\n\nssh://u@h2 labs=5 nodes=40  # big\nctx2\n", "e")
    assert lines == (
        P.EngineLine("local", None, None, 1),
        P.EngineLine("ssh://u@h2", 5, 40, 4),
        P.EngineLine("ctx2", None, None, 5),
    )
    for text, line, key in (
        ("local\nh2 labs=0\n", 2, "labs"),
        ("h2 cpus=4\n", 1, "cpus"),
        ("h2 labs=x\n", 1, "labs"),
        ("h2 labs=1 labs=2\n", 1, "labs"),
        ("h2\nh2\n", 2, ""),
    ):
        with pytest.raises(InputError) as err:
            P.parse_engines(text, "engines.txt")
        assert err.value.line == line and err.value.key == key and err.value.file == "engines.txt"
    with pytest.raises(InputError):
        P.parse_engines("# nothing\n", "e")


def reached(name: str, up: bool = True, labs: int = 0, nodes: int = 0) -> Reached:
    if not up:
        return Reached(name, error="connection refused")
    return Reached(name, FakeEngine(), size=Size(cpus=2, memory=8 * GB, labs=labs, nodes=nodes))


def test_room_spreads_over_two_engines_labelled_and_found_again(tiny):
    fakes = {"e1": FakeEngine(), "e2": FakeEngine()}
    room = R.Room("ws", R.numbered_seats(6, "p"))
    out = S.up(
        [reached("e1"), reached("e2")],
        tiny,
        room,
        pool=POOL,
        engine_for=lambda r: fakes[r.name],
    )
    assert out.report.up == [s.lab for s in room.seats] and not out.unreachable
    for name, fake in fakes.items():
        labs = R.room_labs(fake, "ws")
        assert len(labs) == 3 and labs == sorted(out.placement.on(name))
        for lab in labs:  # the placement is recorded in the labels on that engine
            assert all(c["Labels"][R.ENGINE] == name for c in fake.objects(lab)[0])
    # up again with the same engines keeps every lab where it is
    again = S.up([reached("e1"), reached("e2")], tiny, room, engine_for=lambda r: fakes[r.name])
    assert {o.action for o in again.report.outcomes} == {"kept"}
    assert again.placement.where == out.placement.where
    parts = S.status([reached("e1"), reached("e2")], "ws", engine_for=lambda r: fakes[r.name])
    assert [len(p.labs) for p in parts] == [3, 3]
    gone = S.down([reached("e1"), reached("e2")], "ws", engine_for=lambda r: fakes[r.name])
    assert [len(p.removed) for p in gone] == [3, 3]
    assert all(fake.objects() == ([], []) for fake in fakes.values())


@pytest.mark.parametrize("k", [1, 2])
def test_ctrl_c_as_a_spread_room_starts_a_thread_stops_every_engine_with_every_seat_told(tiny, k):
    """A Ctrl-C inside the submit of the k-th engine's thread: the room stops on both engines,
    labs are whole or absent, and every seat has an outcome (never begun: skipped)."""
    fakes = {"e1": FakeEngine(), "e2": FakeEngine()}
    room, engines = R.Room("ws", R.numbered_seats(4, "p")), [reached("e1"), reached("e2")]
    with ctrl_c_at_thread_start(k) as starts:
        out = S.up(engines, tiny, room, pool=POOL, engine_for=lambda r: fakes[r.name])
    assert starts[0] >= k and out.report.interrupted
    assert [o.seat for o in out.report.outcomes] == list(room.seats)
    for name, fake in fakes.items():
        for lab in out.placement.on(name):
            state = fake.state(lab)
            assert state.running == (lab in out.report.up) and state.exists == state.running


def test_unreachable_engine_is_skipped_its_share_moves_and_down_says_what_it_missed(tiny):
    fakes = {"e1": FakeEngine(), "e2": FakeEngine()}
    room = R.Room("ws", R.numbered_seats(4, "p"))
    said: list[str] = []
    out = S.up(
        [reached("e1"), reached("e2", up=False)],
        tiny,
        room,
        say=said.append,
        pool=POOL,
        engine_for=lambda r: fakes[r.name],
    )
    assert out.report.up == [s.lab for s in room.seats]
    assert [r.name for r in out.unreachable] == ["e2"] and "e2 is unreachable" in said[0]
    assert len(R.room_labs(fakes["e1"], "ws")) == 4 and fakes["e2"].objects() == ([], [])
    parts = S.status([reached("e1"), reached("e2", up=False)], "ws", lambda r: fakes[r.name])
    assert len(parts[0].labs) == 4 and parts[1].error.startswith("unreachable")
    gone = S.down(
        [reached("e1"), reached("e2", up=False)], "ws", engine_for=lambda r: fakes[r.name]
    )
    assert len(gone[0].removed) == 4 and "unreachable" in gone[1].error


def test_labs_that_fit_nowhere_are_reported_unplaced_and_the_others_come_up(tiny):
    fakes = {"e1": FakeEngine()}
    room = R.Room("ws", R.numbered_seats(3, "p"))
    out = S.up(
        [reached("e1")],
        tiny,
        room,
        lines=(P.EngineLine("e1", labs=2),),
        pool=POOL,
        engine_for=lambda r: fakes[r.name],
    )
    assert out.report.up == ["p01", "p02"]
    (missed,) = out.report.not_up
    assert missed.seat.lab == "p03" and missed.action == "unplaced" and "labs=" in missed.error


def test_a_stranger_lab_on_any_engine_refuses_the_room_before_anything_is_made(tiny):
    fakes = {"e1": FakeEngine(), "e2": FakeEngine()}
    from hoplab import api

    api.up(tiny, "p02", engine=fakes["e2"], pool=POOL)
    room = R.Room("ws", R.numbered_seats(2, "p"))
    with pytest.raises(InputError, match="p02"):
        S.up([reached("e1"), reached("e2")], tiny, room, engine_for=lambda r: fakes[r.name])
    assert fakes["e1"].objects() == ([], [])


def test_an_unknown_engine_name_is_bad_input_and_a_dead_socket_is_unreachable(
    tmp_path, monkeypatch
):
    from hoplab.engine import engines as E

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # no contexts at all
    with pytest.raises(InputError) as err:
        E.reach(["local", "no-such-context"])
    assert err.value.key == "--engine" and "no-such-context" in err.value.message
    (dead,) = E.reach([f"unix://{tmp_path}/none.sock"])
    assert not dead.up and dead.error and dead.engine is None


def test_a_context_name_resolves_to_its_endpoint_from_the_meta_file(tmp_path, monkeypatch):
    import hashlib
    import json

    from hoplab.engine import engines as E

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    meta = tmp_path / "contexts" / "meta" / hashlib.sha256(b"host2").hexdigest()
    meta.mkdir(parents=True)
    sock = f"unix://{tmp_path}/host2.sock"
    (meta / "meta.json").write_text(
        json.dumps({"Name": "host2", "Endpoints": {"docker": {"Host": sock}}})
    )
    assert E.context_endpoint("host2") == (sock, None)
    assert E.context_endpoint("host3") is None
    (gone,) = E.reach(["host2"])  # a known context whose engine is down: unreachable, not bad input
    assert gone.name == "host2" and not gone.up


def test_cli_bad_engines_file_exits_2_naming_file_line_and_key(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "engines.txt"
    bad.write_text("local\nssh://lab@host2 labs=many\n")
    for cmd in ("up --participants 2", "status", "down"):
        res = subprocess.run(
            [sys.executable, "-m", "hoplab", "workshop", *cmd.split(), "--engines", str(bad)],
            capture_output=True,
            text=True,
            timeout=60,
        )  # DOCKER_HOST points nowhere (conftest): exit 2 proves no engine was needed
        assert res.returncode == 2, res.stderr
        assert f"{bad}:2" in res.stderr and "labs" in res.stderr
