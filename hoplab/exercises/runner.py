"""Run exercises one by one against a running lab, each cleaning up after itself."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hoplab.checks import Check, ExerciseResult, Status, env, fail
from hoplab.errors import HoplabError
from hoplab.exercises.base import Cast, Exercise
from hoplab.interrupts import Interrupted
from hoplab.runtime.needs import Missing, match

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab


def cast(lab: Lab, exercise: Exercise) -> Cast | Check:
    """The lab's nodes in the exercise's roles, or an ENV check naming the first need the
    topology lacks: a lab that cannot show a lesson is not a failed lesson."""
    found = match(exercise.needs, lab.state)
    if isinstance(found, Missing):
        return env(f"needs {found.need}", found.need, found.observed, found.hint)
    return {role: lab.node(name) for role, name in found.items()}


def run_one(lab: Lab, exercise: Exercise, artifacts: Path | None) -> ExerciseResult:
    """An exercise that raises is a FAIL with the reason, never a crash of the whole run, and
    one that a foreign process got in the way of is ENV (see _foreign_in_the_way).

    It starts by casting the lab's nodes into the exercise's roles (ENV when the topology lacks
    a need), then reaps what earlier runs left in the lab; a Ctrl-C stops every program it
    started (Interrupted says which).
    """
    started = time.monotonic()
    nodes = cast(lab, exercise)
    if isinstance(nodes, Check):
        return ExerciseResult(exercise.name, (nodes,), time.monotonic() - started)
    lab.artifacts = artifacts / exercise.name if artifacts else None
    lab.reap()
    started = time.monotonic()  # the exercise's own time, without the reap
    raised = ""
    try:
        with lab.evidence():  # hoplab's tools, in every node's own container
            checks = list(exercise.run(lab, nodes))
    except KeyboardInterrupt:
        raise Interrupted(lab.stop_all(), f"exercise {exercise.name}") from None
    except Exception as err:  # a bug in one exercise must not end the run
        raised = str(err) if isinstance(err, HoplabError) else f"{type(err).__name__}: {err}"
        checks = [
            fail(
                "exercise ran to the end",
                "every step completes",
                " ".join(raised.split())[-400:],
                hint="a node may have stopped or been changed; see `hoplab status`",
            )
        ]
    finally:
        lab.stop_all()
    if any(c.status is Status.FAIL for c in checks):
        checks = _foreign_in_the_way(lab, exercise, checks, raised) or checks
    return ExerciseResult(exercise.name, tuple(checks), time.monotonic() - started)


def _foreign_in_the_way(lab: Lab, exercise: Exercise, checks: list[Check], raised: str) -> list:
    """ENV checks, one per foreign listener the failure points at (its node and port), or [].

    A server the learner left running (on srv:80, say) makes an exercise that needs the port
    fail to bind, or answer in its place: the lab cannot show the lesson then, so the exercise
    is not runnable (ENV), naming the process and how to stop it. The failure stays as evidence.
    Only a failed exercise pays for the look (one exec per node, in parallel).
    """
    from hoplab.runtime.listeners import blamed, foreign_listeners

    failed = [c for c in checks if c.status is Status.FAIL]
    text = "\n".join(
        [raised, *(f"{c.name} {c.expected} {c.observed} {c.evidence} {c.hint}" for c in failed)]
    )
    addresses = {n.name: [*n.addresses.values(), *n.addresses6.values()] for n in lab.state.nodes}
    try:
        foreign = blamed(foreign_listeners(lab.engine, lab.state), text, addresses)
    except HoplabError:
        return []  # the nodes cannot be read: the failure stands as it is
    flat = " ".join(text.split())  # what was tried (its head) and why it failed (its tail)
    evidence = flat if len(flat) <= 400 else f"{flat[:200]} ... {flat[-200:]}"
    return [
        env(
            f"{f.node} {f.proto} port {f.port} is free for the exercise",
            f"no process but hoplab's own on {f.node} {f.proto} port {f.port}",
            f"{f.describe()}: a process hoplab did not start",
            f"{exercise.name} cannot run while it holds the port; stop it with "
            f"`{f.fix(lab.name)}`, then `hoplab run --name {lab.name} {exercise.name}`",
            evidence=evidence,
        )
        for f in foreign
    ]


def run_all(
    lab: Lab,
    exercises: list[Exercise],
    artifacts: Path | None,
    on_start: Callable[[Exercise], None] = lambda e: None,
    on_done: Callable[[ExerciseResult], None] = lambda r: None,
) -> list[ExerciseResult]:
    results = []
    for ex in exercises:
        on_start(ex)
        result = run_one(lab, ex, artifacts)
        on_done(result)
        results.append(result)
    return results
