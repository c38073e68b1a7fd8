"""Workshop assignments: participants' programs graded across the lab's real hops.

Each module holds one assignment's checker, named after what it checks; the participant-facing
files (starter.py, solution.py, LESSON.md) live in
lab/grading/assignments/<name>/ (see hoplab.resources.assignments_dir).
"""

from __future__ import annotations

from importlib import import_module

from hoplab.errors import InputError
from hoplab.grading.base import Assignment

MODULES = [
    "tcp_echo",
    "udp_service",
    "unix_service",
    "traceroute",
    "multihomed_bind",
    "lossy_client",
]


def catalogue() -> list[Assignment]:
    return [import_module(f"hoplab.grading.{m}").ASSIGNMENT for m in MODULES]


def select(name: str) -> Assignment:
    every = {a.name: a for a in catalogue()}
    if name not in every:
        raise InputError(
            f"unknown assignment {name!r}",
            key="ASSIGNMENT",
            hint=f"run `hoplab assignments`; known: {', '.join(every)}",
        )
    return every[name]
