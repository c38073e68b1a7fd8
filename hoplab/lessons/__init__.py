"""Guided lessons: one per exercise, same name, made of steps the learner types and hoplab
verifies from evidence the learner's own programs left (socket tables, captures).

The catalogue follows the exercises' teaching order; lessons not written yet are absent, and
`hoplab learn` says so. The JSON form (`as_json`) is stable and documented there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hoplab.errors import InputError
from hoplab.lessons import (
    bind_scope,
    dual_stack_bind,
    ephemeral_ports,
    errors_by_layer,
    half_close,
    hop_limit,
    mac_per_hop,
    mtu_and_fragmentation,
    nat,
    neighbour_discovery,
    no_fragmenting_routers,
    one_port_many_clients,
    port_opens_on_listen,
    socket_is_address_protocol_port,
    stream_vs_datagram,
    tcp_recovers_loss,
    time_wait_and_reuseaddr,
    transport_only_on_end_hosts,
    ttl_and_traceroute,
    unix_socket,
)
from hoplab.lessons.model import Lesson

if TYPE_CHECKING:
    from hoplab.lessons.names import Names

# Explicit, in the exercises' teaching order (hoplab.exercises.CATALOGUE).
CATALOGUE: tuple[Lesson, ...] = (
    one_port_many_clients.LESSON,
    port_opens_on_listen.LESSON,
    socket_is_address_protocol_port.LESSON,
    ephemeral_ports.LESSON,
    bind_scope.LESSON,
    dual_stack_bind.LESSON,
    stream_vs_datagram.LESSON,
    unix_socket.LESSON,
    mac_per_hop.LESSON,
    neighbour_discovery.LESSON,
    ttl_and_traceroute.LESSON,
    hop_limit.LESSON,
    transport_only_on_end_hosts.LESSON,
    tcp_recovers_loss.LESSON,
    errors_by_layer.LESSON,
    time_wait_and_reuseaddr.LESSON,
    half_close.LESSON,
    mtu_and_fragmentation.LESSON,
    no_fragmenting_routers.LESSON,
    nat.LESSON,
)

JSON_FORMAT = 1


def catalogue() -> list[Lesson]:
    return list(CATALOGUE)


def select(name: str) -> Lesson:
    every = {lesson.name: lesson for lesson in CATALOGUE}
    if name not in every:
        raise InputError(
            f"unknown lesson {name!r}",
            key="LESSON",
            hint=f"run `hoplab learn`; lessons: {', '.join(every)}",
        )
    return every[name]


def step_number(lesson: Lesson, number: int) -> int:
    if not 1 <= number <= len(lesson.steps):
        raise InputError(
            f"lesson {lesson.name} has no step {number}",
            key="--step",
            hint=f"steps are 1 to {len(lesson.steps)}",
        )
    return number


def as_json(lesson: Lesson, names: Names, passed: set[int]) -> dict[str, Any]:
    """The stable form a script follows (format 1). Keys:

    format, lesson, title, why, pitfalls (markdown), lab, and steps: a list of
    {number, title, text (markdown), commands: [{node, command, keeps_running}], expect,
    hints: [...], watches: [{node, network}] (segments captured from the step's start: show
    the step with `hoplab learn LESSON --step N` before typing its commands), wire (bool),
    passed (bool)}; `hoplab learn --json` adds shown (the step it showed, whose captures it
    started). `hoplab verify --json` prints one result: {name, status (PASS, FAIL or ENV),
    expected, observed, evidence, hint}. Commands are shell lines, run in the node as typed in
    `hoplab shell NODE`; one that keeps_running stays in a terminal of its own until the step
    has been verified.
    """
    return {
        "format": JSON_FORMAT,
        "lesson": lesson.name,
        "title": lesson.title,
        "lab": names["lab"],
        "why": names.fill(lesson.why),
        "pitfalls": names.fill(lesson.pitfalls),
        "steps": [
            {
                "number": n,
                "title": step.title,
                "text": names.fill(step.text),
                "commands": [
                    {
                        "node": c.node,
                        "command": names.fill(c.command),
                        "keeps_running": c.keeps_running,
                    }
                    for c in step.commands
                ],
                "expect": names.fill(step.expect),
                "hints": [names.fill(h) for h in step.hints],
                "watches": [{"node": w.node, "network": w.network} for w in step.watch],
                "wire": step.wire,
                "passed": n in passed,
            }
            for n, step in enumerate(lesson.steps, 1)
        ],
    }
