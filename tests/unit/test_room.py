"""The workshop room on the fake engine: seats, parallel bring-up, a failing seat, stop, down.

A room must never be left with half a lab: every lab is either whole and running, or absent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from ipaddress import IPv4Network

import pytest

from hoplab import lifecycle
from hoplab.errors import InputError
from hoplab.model import labels as L
from hoplab.workshop import room as R
from tests.unit.conftest import ctrl_c_at_thread_start
from tests.unit.fake_engine import FakeEngine, Faults

POOL = IPv4Network("10.200.0.0/16")


def wait_until(done: Callable[[], bool]) -> None:
    """For ordering threads in a test: the outcome never depends on how long this takes."""
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def whole_or_absent(fake: FakeEngine, labs: list[str]) -> dict[str, bool]:
    """For each lab: True whole and running, False absent; fails on a half-made lab."""
    out = {}
    for name in labs:
        state = fake.state(name)
        if state.exists:
            assert state.running and len(state.nodes) == 3 and len(state.networks) == 2, name
        out[name] = state.exists
    return out


def test_every_seat_gets_a_whole_lab_labelled_with_room_and_participant(tiny):
    fake = FakeEngine()
    room = R.Room("ws1", R.numbered_seats(6, "p"))
    seen: list[tuple[str, int, int]] = []
    report = R.up(
        fake,
        tiny,
        room,
        parallel=4,
        pool=POOL,
        on_done=lambda o, d, t: seen.append((o.seat.lab, d, t)),
    )
    assert report.up == [f"p0{i}" for i in range(1, 7)] and not report.not_up
    assert sorted(d for _, d, _ in seen) == list(range(1, 7))
    assert R.room_labs(fake, "ws1") == report.up
    for seat in room.seats:
        state = fake.state(seat.lab)
        assert state.running and state.owner == seat.participant
        assert state.labels[L.WORKSHOP] == "ws1"
    subnets = [IPv4Network(s) for lab in report.up for s in fake.state(lab).networks.values()]
    assert len(set(subnets)) == 12  # side by side on one engine: no two labs share a subnet


def test_up_again_keeps_the_labs_it_has(tiny):
    fake = FakeEngine()
    room = R.Room("ws2", R.numbered_seats(3, "q"))
    R.up(fake, tiny, room, pool=POOL)
    ids = {c["Id"] for c in fake.objects()[0]}
    bigger = R.Room("ws2", R.numbered_seats(4, "q"))  # a latecomer joins
    report = R.up(fake, tiny, bigger, pool=POOL)
    assert [o.action for o in report.outcomes] == ["kept", "kept", "kept", "created"]
    assert ids <= {c["Id"] for c in fake.objects()[0]}


def test_a_failing_seat_stops_the_room_and_leaves_no_half_lab(tiny):
    stop, f04_in_flight = threading.Event(), threading.Event()

    def hold_later_seats(name: str) -> None:
        # The failing seat waits for the earlier ones to be up, the later ones for the failure:
        # then the outcome of every seat is exact, however the threads are scheduled.
        if name == "f03-r1":
            wait_until(lambda: fake.state("f01").running and fake.state("f02").running)
            assert f04_in_flight.wait(10)
        elif name[:3] > "f03":
            if name.startswith("f04-"):
                f04_in_flight.set()
            assert stop.wait(10)

    fake = FakeEngine(
        workers=1, faults=Faults(fail_containers={"f03-r1"}, on_create=hold_later_seats)
    )
    room = R.Room("ws3", R.numbered_seats(8, "f"))
    report = R.up(fake, tiny, room, parallel=2, stop=stop, pool=POOL)
    assert report.error is not None and report.error.seat.lab == "f03"
    assert "injected create failure" in report.error.error
    actions = [o.action for o in report.outcomes]
    assert actions == ["created", "created", "failed", "rolled back"] + ["skipped"] * 4
    present = whole_or_absent(fake, [s.lab for s in room.seats])
    assert sorted(n for n, up in present.items() if up) == report.up == ["f01", "f02"]


def test_a_stopped_room_skips_every_seat(tiny):
    fake = FakeEngine()
    stop = threading.Event()
    stop.set()
    report = R.up(fake, tiny, R.Room("ws4", R.numbered_seats(3, "s")), stop=stop, pool=POOL)
    assert [o.action for o in report.outcomes] == ["skipped"] * 3
    assert fake.objects() == ([], [])


def test_stop_mid_room_rolls_back_labs_in_flight(tiny):
    """Setting stop (the CLI does on Ctrl-C) while labs are being created: each lab in flight
    rolls back (Cancelled), the rest are skipped, the whole ones stay whole."""
    stop, c04_in_flight = threading.Event(), threading.Event()

    def at_create(name: str) -> None:
        # c01 and c02 are up and c04 is in flight when c03 stops the room.
        if name.startswith("c03-"):
            wait_until(lambda: fake.state("c01").running and fake.state("c02").running)
            assert c04_in_flight.wait(10)
            stop.set()
        elif name[:3] > "c03":
            if name.startswith("c04-"):
                c04_in_flight.set()
            assert stop.wait(10)

    fake = FakeEngine(workers=1, faults=Faults(on_create=at_create))
    room = R.Room("ws5", R.numbered_seats(6, "c"))
    report = R.up(fake, tiny, room, parallel=2, stop=stop, pool=POOL)
    actions = [o.action for o in report.outcomes]
    assert actions == ["created", "created", "rolled back", "rolled back", "skipped", "skipped"]
    assert report.error is None
    present = whole_or_absent(fake, [s.lab for s in room.seats])
    assert sorted(n for n, up in present.items() if up) == report.up == ["c01", "c02"]


def test_a_seat_held_by_someone_elses_lab_is_refused_before_anything_is_made(tiny):
    fake = FakeEngine()
    lifecycle.up(fake, tiny, "p02", lambda *a: None, lambda m: None, labels={L.OWNER: "zoe"})
    before = fake.objects()
    with pytest.raises(InputError) as err:
        R.up(fake, tiny, R.Room("ws6", R.numbered_seats(3, "p")), pool=POOL)
    assert "'p02' already exists (owner zoe)" in err.value.message and err.value.exit_code == 2
    assert fake.objects() == before


def test_down_removes_the_room_and_nothing_else(tiny):
    fake = FakeEngine()
    R.up(fake, tiny, R.Room("ws7", R.numbered_seats(3, "d")), pool=POOL)
    R.up(fake, tiny, R.Room("other", R.numbered_seats(2, "o")), pool=POOL)
    lifecycle.up(fake, tiny, "solo", lambda *a: None, lambda m: None, pool=POOL)
    done: list[str] = []
    assert R.down(fake, "ws7", on_done=lambda lab, d, t: done.append(lab)) == ["d01", "d02", "d03"]
    assert sorted(done) == ["d01", "d02", "d03"]
    assert [s.name for s in fake.labs()] == ["o01", "o02", "solo"]
    assert R.down(fake, "ws7") == []


@pytest.mark.parametrize("k", [1, 2, 3])
def test_ctrl_c_as_the_room_starts_a_thread_stops_it_with_every_seat_told(tiny, k):
    """A Ctrl-C that lands inside a submit (as the k-th worker thread starts) stops the room
    like one during the wait: labs in flight roll back, the rest are skipped, every seat has an
    outcome and no lab is half made. The submits once stood outside the try: up raised."""
    fake = FakeEngine()
    room = R.Room(f"ws9{k}", R.numbered_seats(4, f"k{k}"))
    with ctrl_c_at_thread_start(k) as starts:
        report = R.up(fake, tiny, room, parallel=3, pool=POOL)
    assert starts[0] >= k and report.interrupted
    assert [o.seat for o in report.outcomes] == list(room.seats)
    assert {o.action for o in report.outcomes} <= {"created", "rolled back", "skipped"}
    present = whole_or_absent(fake, [s.lab for s in room.seats])
    assert sorted(n for n, up in present.items() if up) == report.up
