"""The portal's map of a room over several engines: which engine each participant's lab is on,
and what a participant is told when that engine stops answering. No Docker: each engine here is a
stand-in whose `owners` call (EngineAPI's) answers for its labs or fails as a dead socket does.
The real two-engine portal (seats, terminals, checks, resets) is proved in tests/test_engines.py.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from aiohttp import web

from hoplab.portal.server import Portal


class Stub:
    """The one engine call the portal's map makes: `owners(room)`, or a dead engine's error."""

    def __init__(self, owners: dict[str, str]) -> None:
        self.seats, self.dead = owners, False

    def owners(self, room: str) -> dict[str, str]:
        if self.dead:
            raise ConnectionError("Connection aborted: No such file or directory")
        assert room == "room"
        return dict(self.seats)


def portal(**engines: Stub) -> Portal:
    first = next(iter(engines.values()))
    io = ThreadPoolExecutor(2)
    return Portal(first, "room", None, None, None, io, engines=dict(engines))  # type: ignore[arg-type]


def test_each_lab_is_served_from_the_engine_it_is_found_on():
    near, far = Stub({"ann": "room-ann"}), Stub({"bob": "room-bob", "cy": "room-cy"})
    p = portal(local=near, far=far)
    assert p.read_seats() == {"ann": "room-ann", "bob": "room-bob", "cy": "room-cy"}
    assert p.where == {"room-ann": "local", "room-bob": "far", "room-cy": "far"}
    assert p.engine_of("room-bob") is far and p.engine_of("room-ann") is near
    assert p.engine_of("never-seen") is near and not p.unreachable
    # a lab name found on two engines (a stale copy): the first engine given keeps it
    twice = portal(local=Stub({"ann": "room-ann"}), other=Stub({"ann": "room-ann"}))
    assert twice.read_seats() == {"ann": "room-ann"} and twice.where == {"room-ann": "local"}


def test_a_participant_whose_engine_went_away_gets_503_and_the_others_are_served():
    near, far = Stub({"ann": "room-ann"}), Stub({"bob": "room-bob"})
    p = portal(local=near, far=far)

    async def go() -> None:
        assert await p.lab_of("bob") == "room-bob"
        far.dead = True
        await p.seats(fresh=True)
        assert "No such file" in p.unreachable["far"]
        assert await p.lab_of("ann") == "room-ann"  # the first engine's participant as before
        with pytest.raises(web.HTTPServiceUnavailable) as err:
            await p.lab_of("bob")  # their seat is kept: told the engine is gone, not "no lab"
        assert "far cannot be reached" in err.value.text
        with pytest.raises(web.HTTPNotFound):
            await p.lab_of("zed")
        far.dead = False  # back: served again at the next read
        await p.seats(fresh=True)
        assert await p.lab_of("bob") == "room-bob" and not p.unreachable

    asyncio.run(go())


def test_one_engine_alone_reads_as_before_and_its_errors_are_the_requests():
    only = Stub({"ann": "room-ann"})
    p = portal(local=only)
    assert p.read_seats() == {"ann": "room-ann"} and p.where == {"room-ann": "local"}
    only.dead = True
    with pytest.raises(ConnectionError):
        p.read_seats()


def test_a_terminal_opens_pumps_and_ends_on_its_labs_own_engine(tiny):
    """Terminals go through EngineAPI (open_tty, kill_tty) of the engine the lab is
    on, not the portal's first: here the fake engine's TTY is a socket pair."""
    from hoplab import lifecycle
    from hoplab.portal.terminals import Terminals
    from tests.unit.fake_engine import FakeEngine

    first, far = FakeEngine(), FakeEngine()
    lifecycle.up(far, tiny, "tt1", lambda *a: None, lambda m: None)
    io = ThreadPoolExecutor(2)

    async def go() -> None:
        terms = Terminals(first, io)
        term = await terms.open("ann", "tt1", "alice", "tt1-alice", engine=far)
        assert not first.ttys and len(far.ttys) == 1
        (exec_id, (container, shell_end)), *_ = far.ttys.items()
        assert (exec_id, container) == (term.exec_id, "tt1-alice")
        shell_end.sendall(b"hoplab$ ")
        for _ in range(100):  # the pump moves what the shell wrote into the scrollback
            if term.scrollback:
                break
            await asyncio.sleep(0.01)
        assert term.scrollback == "hoplab$ "
        await terms.close(term)
        assert far.ttys == {} and terms.of("ann") == []

    try:
        asyncio.run(go())
    finally:
        io.shutdown()


def test_check_workers_follow_the_engines_cpus_within_bounds():
    from hoplab.workshop.placement import MAX_CHECK_WORKERS, check_workers

    assert check_workers(2) == 2  # the project's machine: as before
    assert [check_workers(c) for c in (0, 1, 5)] == [1, 1, 5]
    assert check_workers(64) == MAX_CHECK_WORKERS
