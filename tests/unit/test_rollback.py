"""Rollback: an error, a cancel or a Ctrl-C in the middle of `up` leaves zero objects.

The guarantees rest on two pieces of real engine code tested here directly (`parallel` waits for
every started call and starts no new one after a failure; `or_roll_back` rolls back on any
BaseException with Ctrl-C deferred), and on the fake engine that runs them over in-memory objects
with faults injected at each phase.
"""

from __future__ import annotations

import signal
import threading

import pytest
from hoplab import lifecycle
from hoplab.engine.bringup import create_error
from hoplab.engine.parallel import or_roll_back, parallel
from hoplab.errors import Cancelled, HoplabError, SubnetTaken

from tests.unit.fake_engine import FakeEngine, Faults

quiet = (lambda *a: None, lambda m: None)


def assert_nothing_of(fake: FakeEngine, lab: str) -> None:
    containers, networks = fake.objects(lab)
    assert (containers, networks) == ([], []), f"{lab} left objects behind"


# --- parallel and or_roll_back, the real code -----------------------------------------------------


def test_parallel_waits_for_calls_in_flight_before_raising():
    started, finished = threading.Event(), threading.Event()

    def work(i: int) -> None:
        if i == 0:
            assert started.wait(10)
            raise RuntimeError("first")
        started.set()
        # Still running when item 0 fails: parallel must not return before this finishes.
        threading.Event().wait(0.05)
        finished.set()

    with pytest.raises(RuntimeError, match="first"):
        parallel(work, [0, 1], "p", lambda *a: None, workers=2)
    assert finished.is_set()


def test_parallel_starts_nothing_after_the_first_failure():
    ran: list[int] = []

    def work(i: int) -> None:
        ran.append(i)
        if i == 1:
            raise HoplabError("boom")

    with pytest.raises(HoplabError):
        parallel(work, range(6), "p", lambda *a: None, workers=1)
    assert ran == [0, 1]


def test_parallel_reports_progress_and_returns_in_order():
    seen: list[tuple[str, int, int]] = []
    out = parallel(lambda i: i * i, [3, 1, 2], "sq", lambda *a: seen.append(a), workers=3)
    assert out == [9, 1, 4]
    assert seen[0] == ("sq", 0, 3) and seen[-1] == ("sq", 3, 3)
    assert parallel(lambda i: i, [], "none", lambda *a: seen.append(a), workers=3) == []


@pytest.mark.parametrize("error", [HoplabError("x"), KeyboardInterrupt(), Cancelled("c")])
def test_or_roll_back_rolls_back_on_any_failure_with_ctrl_c_deferred(error):
    handlers: list[object] = []

    def build() -> None:
        raise error

    with pytest.raises(type(error)):
        or_roll_back(build, lambda: handlers.append(signal.getsignal(signal.SIGINT)))
    assert handlers == [signal.SIG_IGN]  # a second Ctrl-C cannot cut the rollback
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # and it is restored after


def test_or_roll_back_leaves_a_success_alone():
    rolled: list[int] = []
    assert or_roll_back(lambda: 7, lambda: rolled.append(1)) == 7
    assert rolled == []


def test_create_errors_say_what_happened():
    clash = create_error("network", "lab-a", 409, "network with name lab-a already exists")
    assert "does not belong to this lab" in clash.message and "--name" in clash.hint
    race = create_error("network", "lab-a", 403, "Pool overlaps with other one on this space")
    assert isinstance(race, SubnetTaken)
    other = create_error("container", "lab-r1", 500, "no space left")
    assert type(other) is HoplabError and "no space left" in other.message


# --- the same guarantees through a whole `up` ---------------------------------------------------


@pytest.mark.parametrize("failing", ["alice", "r1", "bob"])
def test_a_node_that_cannot_be_created_rolls_the_lab_back(tiny, failing):
    fake = FakeEngine(faults=Faults(fail_containers={f"rb1-{failing}"}))
    fake.add_stranger_network("stranger", "10.99.0.0/24")
    with pytest.raises(HoplabError, match="injected create failure"):
        lifecycle.up(fake, tiny, "rb1", *quiet)
    assert_nothing_of(fake, "rb1")
    assert [n["Name"] for n in fake.networks.values()] == ["stranger"]


def test_a_node_that_never_becomes_ready_rolls_the_lab_back(tiny):
    fake = FakeEngine(faults=Faults(never_ready={"rb2-r1"}))
    with pytest.raises(HoplabError, match="did not become ready"):
        lifecycle.up(fake, tiny, "rb2", *quiet)
    assert_nothing_of(fake, "rb2")


def test_a_name_clash_with_a_stranger_rolls_back_and_spares_it(tiny):
    fake = FakeEngine()
    fake.add_stranger_network("rb3-b", "10.98.0.0/24")
    with pytest.raises(HoplabError, match="does not belong to this lab"):
        lifecycle.up(fake, tiny, "rb3", *quiet)
    assert_nothing_of(fake, "rb3")
    assert [n["Name"] for n in fake.networks.values()] == ["rb3-b"]


@pytest.mark.parametrize("after", [1, 2, 3])
def test_cancel_mid_up_rolls_back(tiny, after):
    fake = FakeEngine(workers=1, faults=Faults(cancel_after_creates=after))
    cancel = threading.Event()
    if after == 3:  # the last node: nothing is left to cancel, so the lab stays up
        assert lifecycle.up(fake, tiny, "rb4", *quiet, cancel=cancel).report.action == "created"
        assert cancel.is_set() and fake.state("rb4").running
        return
    with pytest.raises(Cancelled):
        lifecycle.up(fake, tiny, "rb4", *quiet, cancel=cancel)
    assert_nothing_of(fake, "rb4")


@pytest.mark.parametrize("phase", ["networks", "nodes"])
def test_ctrl_c_mid_up_rolls_back(tiny, phase):
    """Ctrl-C arrives in the main thread, where parallel waits and reports progress."""
    fake = FakeEngine()

    def progress(name: str, done: int, total: int) -> None:
        if name == phase and done >= 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lifecycle.up(fake, tiny, "rb5", progress, lambda m: None)
    assert_nothing_of(fake, "rb5")


def test_ctrl_c_inside_a_create_rolls_back(tiny):
    def interrupt(name: str) -> None:
        if name == "rb6-bob":
            raise KeyboardInterrupt

    fake = FakeEngine(faults=Faults(on_create=interrupt))
    with pytest.raises(KeyboardInterrupt):
        lifecycle.up(fake, tiny, "rb6", *quiet)
    assert_nothing_of(fake, "rb6")


def test_rollback_removes_nodes_before_networks(tiny):
    fake = FakeEngine(workers=1, faults=Faults(fail_containers={"rb7-r1"}))
    with pytest.raises(HoplabError):
        lifecycle.up(fake, tiny, "rb7", *quiet)
    removals = [verb for verb, _ in fake.events if verb.startswith("remove")]
    assert removals == sorted(removals, key=lambda v: v != "remove container")
    assert "remove network" in removals
    assert_nothing_of(fake, "rb7")
