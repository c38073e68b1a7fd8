"""The terminal side shared by every command: consoles, progress bars, messages, ages.

The engine reports progress as plain (phase, done, total) events; only this module knows rich.
Handlers import this module when they run, never at parser build time: rich costs ~50 ms.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from hoplab.engine.interface import EngineAPI
    from hoplab.workshop.room import Outcome, Room, RoomReport

# Off a terminal (CI logs, pipes) rich would wrap at 80 columns; tables read better wider.
_WIDTH = None if sys.stdout.isatty() else 160
out = Console(highlight=False, width=_WIDTH)
err = Console(stderr=True, highlight=False, width=_WIDTH)


@contextmanager
def progress() -> Iterator[Callable[[str, int, int], None]]:
    """EngineAPI events in, rich progress bars out; the engine never sees rich.

    rich.progress is imported here: `hoplab ls` and `status` draw no bars and skip its cost.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TaskID,
        TextColumn,
    )

    bars = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bars.add_task(phase, total=total)
        bars.update(tasks[phase], completed=done, total=total)

    with bars:
        yield update


def say(msg: str) -> None:
    err.print(f"[dim]{msg}[/]")


def engine() -> EngineAPI:
    """The engine of the environment, through the public API like every other caller."""
    from hoplab.api import from_env

    return from_env()


def age(created: str) -> str:
    from datetime import UTC, datetime

    try:
        secs = int((datetime.now(UTC) - datetime.fromisoformat(created)).total_seconds())
    except ValueError:
        return "?"
    return (
        f"{secs // 3600}h{secs % 3600 // 60:02d}m"
        if secs >= 3600
        else f"{secs // 60}m{secs % 60:02d}s"
    )


def seat_progress(
    progress: Callable[[str, int, int], None], seats: int
) -> Callable[[Outcome, int, int], None]:
    """A room's on_done: the bar counts the seats told, and a failed seat is said at once."""
    from hoplab.workshop.room import SeatAction

    progress("labs", 0, seats)

    def done(outcome: Outcome, count: int, total: int) -> None:
        progress("labs", count, total)
        if outcome.action is SeatAction.FAILED:
            err.print(f"[red]lab {outcome.seat.lab} failed[/]: {outcome.error}")

    return done


def room_summary(room: Room, report: RoomReport, elapsed: float) -> None:
    """One line per outcome kind, then the labs up and those not; shared by one and many engines."""
    counts: dict[str, int] = {}
    for o in report.outcomes:
        counts[o.action] = counts.get(o.action, 0) + 1
    detail = ", ".join(f"{n} {a}" for a, n in counts.items())
    colour = "green" if len(report.up) == len(room.seats) else "yellow"
    err.print(
        f"[{colour}]workshop {room.name}: {len(report.up)} of {len(room.seats)} labs up[/] "
        f"({detail}) in {elapsed:.1f} s"
    )
    if report.up:
        err.print(f"  up: {', '.join(report.up)}")
    for o in report.not_up:
        err.print(f"  {o.action}: {o.seat.lab}" + (f" ({o.error})" if o.error else ""))
