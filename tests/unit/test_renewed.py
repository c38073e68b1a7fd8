"""hoplab.portal.renewed: a value is served from memory while young, renewed in the background
while not too old, and read on the request's path only when it is too old, missing or dropped.
A clock the test moves, and reads the test releases: nothing here depends on timing."""

from __future__ import annotations

import asyncio

import pytest

from hoplab.portal.renewed import Renewed


class Reads:
    """A read per call, each waiting for the test to release it with a value (or an error)."""

    def __init__(self) -> None:
        self.waiting: list[asyncio.Future[str]] = []

    async def read(self) -> str:
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.waiting.append(done)
        return await done

    async def release(self, value: str | Exception) -> None:
        for _ in range(10):  # let the read start: a few turns of the loop, no time
            if self.waiting:
                break
            await asyncio.sleep(0)
        done = self.waiting.pop(0)
        if isinstance(value, Exception):
            done.set_exception(value)
        else:
            done.set_result(value)
        for _ in range(3):
            await asyncio.sleep(0)


def test_served_young_renewed_in_the_background_read_again_when_too_old():
    async def go() -> None:
        now = [0.0]
        box: Renewed[str, str] = Renewed(1.0, 5.0, clock=lambda: now[0])
        reads = Reads()
        first = asyncio.ensure_future(box.get("lab", reads.read))
        also = asyncio.ensure_future(box.get("lab", reads.read))  # shares the read in flight
        await reads.release("v1")
        assert await first == await also == "v1" and not reads.waiting
        now[0] = 0.9
        assert await box.get("lab", reads.read) == "v1" and not reads.waiting  # young
        now[0] = 2.0  # older than soft: served at once, one renewal starts
        assert await box.get("lab", reads.read) == "v1"
        assert await box.get("lab", reads.read) == "v1"
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(reads.waiting) == 1  # one renewal for both
        await reads.release("v2")
        assert await box.get("lab", reads.read) == "v2"
        now[0] = 7.5  # older than hard (the age counts from the read's start, 2.0)
        late = asyncio.ensure_future(box.get("lab", reads.read))
        await asyncio.sleep(0)
        assert not late.done()
        await reads.release("v3")
        assert await late == "v3"

    asyncio.run(go())


async def read_once(value: str) -> tuple[list[float], Renewed[str, str], Reads]:
    """A box (soft 1 s, hard 5 s) holding `value`, read at time 0, and the clock set to 2 s:
    older than soft."""
    now = [0.0]
    box: Renewed[str, str] = Renewed(1.0, 5.0, clock=lambda: now[0])
    reads = Reads()
    got = asyncio.ensure_future(box.get("lab", reads.read))
    await reads.release(value)
    assert await got == value
    now[0] = 2.0
    return now, box, reads


def test_a_drop_forgets_the_value_and_a_read_started_before_it():
    async def go() -> None:
        _, box, reads = await read_once("old")
        assert await box.get("lab", reads.read) == "old"  # a renewal is in flight
        box.drop("lab")  # the lab was reset meanwhile
        after = asyncio.ensure_future(box.get("lab", reads.read))
        await reads.release("before the reset")  # the renewal ends: not kept
        await reads.release("after the reset")
        assert await after == "after the reset"
        assert await box.get("lab", reads.read) == "after the reset"

    asyncio.run(go())


def test_a_failed_renewal_keeps_the_value_and_a_failed_read_reaches_the_request():
    async def go() -> None:
        now, box, reads = await read_once("v1")
        assert await box.get("lab", reads.read) == "v1"
        await reads.release(OSError("engine gone"))
        assert await box.get("lab", reads.read) == "v1"  # served until hard; renewed again
        await reads.release(OSError("engine gone"))
        now[0] = 6.0
        failing = asyncio.ensure_future(box.get("lab", reads.read))
        await reads.release(OSError("engine gone"))
        with pytest.raises(OSError, match="engine gone"):
            await failing
        fresh = asyncio.ensure_future(box.get("lab", reads.read, fresh=True))
        await reads.release("v2")
        assert await fresh == "v2"

    asyncio.run(go())
