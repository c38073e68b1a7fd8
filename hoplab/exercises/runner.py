"""Run exercises one by one against a running lab, each cleaning up after itself."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hoplab.checks import ExerciseResult, fail
from hoplab.errors import HoplabError
from hoplab.exercises.base import Exercise
from hoplab.interrupts import Interrupted

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab


def run_one(lab: Lab, exercise: Exercise, artifacts: Path | None) -> ExerciseResult:
    """An exercise that raises is a FAIL with the reason, never a crash of the whole run.

    It starts by reaping what earlier runs left in the lab, and a Ctrl-C stops every program it
    started (Interrupted says which).
    """
    lab.artifacts = artifacts / exercise.name if artifacts else None
    lab.reap()
    started = time.monotonic()
    try:
        checks = list(exercise.run(lab))
    except KeyboardInterrupt:
        raise Interrupted(lab.stop_all(), f"exercise {exercise.name}") from None
    except HoplabError as err:
        checks = [
            fail(
                "exercise ran to the end",
                "every step completes",
                " ".join(str(err).split())[-400:],
                hint="a node may have stopped or been changed; see `hoplab status`",
            )
        ]
    finally:
        lab.stop_all()
    return ExerciseResult(exercise.name, tuple(checks), time.monotonic() - started)


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
