"""What an exercise is: a lesson, and a function that sets up, runs, collects evidence, checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hoplab.checks import Check

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.net import Lab


@dataclass(frozen=True)
class Exercise:
    name: str
    summary: str
    lesson: str
    run: Callable[[Lab], list[Check]]
