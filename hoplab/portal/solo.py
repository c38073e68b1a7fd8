"""`hoplab learn --serve`: the participant's page for one learner's own lab, with no room.

The same portal as a workshop's (the same routes, page, terminals, exercise runs and checks),
narrowed to one seat: the learner, in the lab `hoplab learn` uses. Nothing is made for it on
the engine: the lab carries no room's labels, so its one seat is fixed here instead of read
from labels, and a reset brings it back as `hoplab up` made it. Its one link's token lives in
a temporary folder that goes when serving ends, with the grader labs a check may have made;
the learner's lab stays, as `hoplab learn` leaves it, and so does the lesson panel's progress:
it is kept per lab beside `hoplab learn`'s own (progress_folder), so a reload, a restart of
`learn --serve` and a reset of the lab all find it.

It listens on 127.0.0.1 only: the page opens a root shell in the lab's nodes.
"""

from __future__ import annotations

import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from hoplab.engine.engines import LOCAL
from hoplab.engine.interface import EngineAPI
from hoplab.engine.state import LabState
from hoplab.lessons.progress import Progress
from hoplab.portal import serve
from hoplab.portal.lessons import LessonProgress
from hoplab.portal.server import Portal

LEARNER = "learner"  # the one seat's name, as the page shows it
HOST = "127.0.0.1"


@dataclass
class Solo(Portal):
    """A portal whose one participant, LEARNER, owns the lab `lab_name` (room: its name)."""

    lab_name: str = ""

    def read_seats(self) -> dict[str, str]:
        self.where = {self.lab_name: LOCAL}
        return {LEARNER: self.lab_name}

    def owns(self, state: LabState, participant: str) -> bool:
        return participant == LEARNER and state.name == self.lab_name

    def seat_labels(self, participant: str, state: LabState) -> dict[str, str]:
        return {}  # no room: the lab comes back as `hoplab up` made it


def progress_folder(lab: str) -> Path:
    """The lesson panel's state dir for the lab: under the user's state directory, beside the
    file `hoplab learn` keeps for the lab (hoplab.lessons.progress), private to the user. Not the
    serving's temporary folder, which goes when serving ends; not the lab, which a reset
    replaces and where the learner is root."""
    folder = Progress(lab).path.parent / "portal" / lab
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _sigterm_as_ctrl_c(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same clean end as Ctrl-C: terminals killed, graders removed


def main(
    engine: EngineAPI,
    lab: str,
    port: int,
    say: Callable[[str], None],
    show: Callable[[str], None],
) -> int:
    """Serve the learner's page for `lab` until Ctrl-C (or SIGTERM); show its one link."""
    previous = signal.signal(signal.SIGTERM, _sigterm_as_ctrl_c)
    try:
        with tempfile.TemporaryDirectory(prefix="hoplab-learn-") as folder:
            portal = serve.build(engine, lab, Path(folder), kind=Solo, lab_name=lab)
            portal.learning = LessonProgress(progress_folder(lab))
            token = portal.tokens.issue(LEARNER)

            def ready(base: str) -> None:
                show(serve.url(base, "p", token))
                say(f"serving lab {lab} on {base} for you only (Ctrl-C stops; the lab stays)")

            serve.run(portal, HOST, port, ready)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
