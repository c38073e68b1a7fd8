"""Workshop assignments: participants' programs graded across the lab's real hops.

Each module holds one assignment's checker, named after what it checks; the participant-facing
files (starter.py, solution.py, LESSON.md) live in
hoplab/grading/assignments/<name>/ (see hoplab.resources.assignments_dir).
"""

from __future__ import annotations

from hoplab.errors import InputError
from hoplab.grading import (
    lossy_client,
    multihomed_bind,
    tcp_echo,
    traceroute,
    udp_service,
    unix_service,
)
from hoplab.grading.base import Assignment

# Explicit: the registry is code that tools (and import-linter) can follow.
CATALOGUE: tuple[Assignment, ...] = (
    tcp_echo.ASSIGNMENT,
    udp_service.ASSIGNMENT,
    unix_service.ASSIGNMENT,
    traceroute.ASSIGNMENT,
    multihomed_bind.ASSIGNMENT,
    lossy_client.ASSIGNMENT,
)


def catalogue() -> list[Assignment]:
    return list(CATALOGUE)


def select(name: str) -> Assignment:
    every = {a.name: a for a in catalogue()}
    if name not in every:
        raise InputError(
            f"unknown assignment {name!r}",
            key="ASSIGNMENT",
            hint=f"run `hoplab assignments`; known: {', '.join(every)}",
        )
    return every[name]
