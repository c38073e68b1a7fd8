"""The engine's interface: what lifecycle, runtime, the workshop room and the plugin may call.

`Engine` (hoplab.engine.engine) implements it on the Docker Engine; the unit tests' fake implements
it in memory. Code above the engine is typed against this Protocol, so it cannot come to depend on
anything else of the real engine without the type checker and the fake both noticing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from hoplab.engine.state import LabState, Progress, Taken, UpReport
from hoplab.model.plan import Plan

if TYPE_CHECKING:
    import docker


@runtime_checkable
class EngineAPI(Protocol):
    """A Docker-like engine that holds every lab's state in labels and nowhere else."""

    # The docker-py client and its low-level API: for image builds and the interactive shell,
    # which need the raw engine. Everything about labs goes through the methods below.
    client: docker.DockerClient | Any
    api: docker.APIClient | Any

    def state(self, lab: str) -> LabState:
        """The lab as its labels describe it (empty if it does not exist)."""
        ...

    def labs(self) -> list[LabState]:
        """Every lab on the engine, sorted by name."""
        ...

    def labs_labelled(self, key: str, value: str) -> list[str]:
        """Names of the labs whose nodes carry the label key=value, sorted."""
        ...

    def memory(self, lab: str) -> dict[str, int]:
        """Bytes each running node of the lab uses."""
        ...

    def survey(self, lab: str) -> tuple[LabState, Taken]:
        """The lab's state, and the subnets of every other network on the engine (for the
        planner), read together."""
        ...

    def up(
        self,
        plan: Plan,
        image: str,
        progress: Progress = ...,
        labels: dict[str, str] | None = None,
        current: LabState | None = None,
        cancel: threading.Event | None = None,
        heal: bool = True,
    ) -> UpReport:
        """Create the plan's lab, or keep a matching one; on any failure leave zero objects."""
        ...

    def down(self, lab: str | None, progress: Progress = ...) -> tuple[int, int]:
        """Remove one lab (None: every hoplab lab); returns (containers, networks) removed."""
        ...

    def container(self, lab: str, node: str) -> dict:
        """The node's container (a dict with at least Id and Labels), only if it is the lab's."""
        ...

    def exec_stream(
        self, container: str, cmd: list[str], write: Callable[[int, bytes], None]
    ) -> int: ...

    def run(self, container: str, cmd: list[str]) -> tuple[int, bytes, bytes]: ...

    def put_file(self, container: str, dest: str, data: bytes, mode: int = 0o755) -> None: ...

    def get_file(self, container: str, path: str) -> bytes: ...
