"""What a lesson is: why, steps the learner performs, pitfalls. Content is data; verifies are code.

Commands and expected output are templates (str.format_map over hoplab.lessons.names.Names), so
a workshop lab whose subnets were remapped shows its own addresses: no literal 10.77.x text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.checks import Check
    from hoplab.lessons.names import Names
    from hoplab.runtime.lab import Lab


@dataclass(frozen=True)
class Command:
    """One thing to type, in one node. keeps_running: a server left in a terminal of its own
    (`hoplab shell NODE`); a script starts it in the background and stops it after the step."""

    node: str
    command: str
    keeps_running: bool = False


@dataclass(frozen=True)
class Watch:
    """A capture the step arms when it is shown, so the learner never races the check: tcpdump
    on `node`'s interface on `network`, keeping only what `bpf` selects (a template too)."""

    node: str
    network: str
    bpf: str


@dataclass(frozen=True)
class StepRun:
    """What a verify gets: the lab, its names, and the step's own captures, read on demand."""

    lab: Lab
    names: Names
    lesson: str
    number: int
    hints: tuple[str, ...]


@dataclass(frozen=True)
class Step:
    title: str
    text: str  # markdown: the short explanation
    commands: tuple[Command, ...]
    expect: str  # what the learner should see
    verify: Callable[[StepRun], Check]
    hints: tuple[str, ...]  # shown one at a time, the first when nothing was done
    watch: tuple[Watch, ...] = ()

    @property
    def wire(self) -> bool:
        """A step verified from captures (a break-it test must show it reads the wire)."""
        return bool(self.watch)


@dataclass(frozen=True)
class Lesson:
    name: str  # the exercise of the same name
    title: str
    why: str
    steps: tuple[Step, ...]
    pitfalls: str
    extra: dict[str, str] = field(default_factory=dict)
