"""Captures a step arms when it is shown, and that its verify reads: evidence from the wire.

Showing a wire step (`hoplab learn LESSON [--step N]`) starts one tcpdump per watched segment,
writing to a fixed file in the node, so the learner can take their time: everything from the
step's start counts, and showing the step again starts afresh. Each capture is bounded (30
minutes, 20000 packets) and marked as hoplab's, so `hoplab run` reaps it like any stray, and it
keeps only what the step's filter selects: the learner's own packets (a ping pattern, a port)
and never those of hoplab's exercises.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from hoplab.errors import HoplabError
from hoplab.runtime.lab import SCRATCH, _each_node

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun, Watch
    from hoplab.lessons.names import Names
    from hoplab.runtime.lab import Lab
    from hoplab.runtime.pcap import Frame

LIMIT_S = 1800
LIMIT_PACKETS = 20000


def _path(lesson: str, number: int, watch: Watch) -> str:
    return f"{SCRATCH}/lesson-{lesson}-{number}-{watch.node}-{watch.network}.pcap"


def arm(lab: Lab, names: Names, lesson: str, number: int, watches: tuple[Watch, ...]) -> None:
    """(Re)start the step's captures; earlier evidence for this step is dropped."""

    def one(watch: Watch) -> None:
        node = lab.node(watch.node)
        path = _path(lesson, number, watch)
        node.run(f"kill $(cat {path}.pid 2>/dev/null) 2>/dev/null; rm -f {path} {path}.pid")
        tcpdump = [
            "tcpdump",
            *("-i", node.iface(watch.network).name, "-n", "-U", "--immediate-mode"),
            *("-Z", "root", "-s", "512", "-c", str(LIMIT_PACKETS), "-w", path),
            names.fill(watch.bpf),
        ]
        script = f"echo $$ > {path}.pid; exec timeout {LIMIT_S} {shlex.join(tcpdump)}"
        proc = node.start(["sh", "-c", script], ready="listening on")
        lab.forget(proc)  # it outlives this command: the verify reads it later

    _each_node(one, list(watches))


def frames(run: StepRun, watch: Watch) -> list[Frame]:
    """What the step's capture on one segment has seen so far."""
    from hoplab.runtime import pcap

    path = _path(run.lesson, run.number, watch)
    try:
        data = run.lab.node(watch.node).fetch(path)
    except HoplabError:
        raise NotArmed(
            f"no capture runs for this step on {watch.node} {watch.network}",
            hint=f"show the step first (it starts the capture): hoplab learn {run.lesson} "
            f"--step {run.number}, then type its commands again",
        ) from None
    return pcap.parse(data)


class NotArmed(HoplabError):
    """The step's capture was never started (or the node was restarted): a FAIL with a hint."""
