"""The engine's interface: all that the code above hoplab.engine may ask of an engine.

`Engine` (hoplab.engine.engine) implements it on the Docker Engine; the unit tests' fake implements
it in memory. Code above the engine is typed against this Protocol and gets its engine from
`hoplab.engine.connect_engine`, so it never holds a docker-py object (client, API, container or
network): every value that crosses this boundary is a plain one (str, bytes, dicts of labels, the
pure LabState), and a new Docker feature becomes a method here first. mypy and
tests/unit/test_interface.py hold both implementations to it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from hoplab.engine.state import LabState, Progress, Taken, UpReport
from hoplab.model.impair import Impair
from hoplab.model.plan import Plan
from hoplab.model.topology import Topology

Say = Callable[[str], None]
# (node, network, impairment or None to clear), as Topology.impairments() lists them.
LinkImpair = tuple[str, str, Impair | None]


@runtime_checkable
class EngineAPI(Protocol):
    """A Docker-like engine that holds every lab's state in labels and nowhere else."""

    # --- reading labs back -------------------------------------------------------------------

    def state(self, lab: str) -> LabState:
        """The lab as its labels describe it (empty if it does not exist)."""
        ...

    def labs(self) -> list[LabState]:
        """Every lab on the engine, sorted by name."""
        ...

    def labs_labelled(self, key: str, value: str) -> list[str]:
        """Names of the labs whose nodes carry the label key=value, sorted."""
        ...

    def owners(self, room: str) -> dict[str, str]:
        """participant -> lab for every lab of the workshop room that names an owner."""
        ...

    def memory(self, lab: str) -> dict[str, int]:
        """Bytes each running node of the lab uses."""
        ...

    def survey(self, lab: str) -> tuple[LabState, Taken]:
        """The lab's state, and the subnets of every other network on the engine (for the
        planner), read together."""
        ...

    def machine(self) -> tuple[int, int]:
        """The engine host's CPUs and bytes of memory (for the room's capacity rule)."""
        ...

    # --- images --------------------------------------------------------------------------------

    def ensure_image(self, hosts_dir: Path, say: Say) -> str:
        """The node image's id, built first from hosts_dir if it is missing or out of date."""
        ...

    def ensure_app_images(self, topo: Topology, node_image: str, say: Say) -> dict[str, str]:
        """node -> image id for every own-image node of topo, found or built."""
        ...

    # --- up and down -------------------------------------------------------------------------

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

    def remove_host_rules(self, image: str) -> None:
        """Take out the host firewall rules that keep labs in (once no lab is left)."""
        ...

    # --- link impairments ----------------------------------------------------------------------

    def netem_missing(self, image: str) -> str:
        """Why the engine's kernel cannot run netem ('' when it can), asked before any lab."""
        ...

    def apply_impairments(self, state: LabState, items: Iterable[LinkImpair], netem: bool) -> None:
        """Put each (node, network, impairment) in place, replacing what was there."""
        ...

    def change_impairment(
        self,
        state: LabState,
        network: str,
        imp: Impair | None,
        node: str | None = None,
        allow_unsupported: bool = False,
    ) -> list[str]:
        """Impair (None: clear) a network of a running lab, or one node's egress on it;
        returns warnings."""
        ...

    def impairments(self, state: LabState) -> dict[tuple[str, str], str]:
        """(node, network) -> what impairs that interface now, read from the kernel."""
        ...

    # --- running things in nodes -------------------------------------------------------------

    def container(self, lab: str, node: str) -> dict[str, Any]:
        """The node's container as the engine lists it (a dict with at least Id and Labels),
        only if it is the lab's."""
        ...

    def exec_target(self, container: str, programs: list[str]) -> tuple[str, str]:
        """Where a call needing programs runs: the node's program container, or its own
        container (given) with a note saying why not. See `inside.exec_target`."""
        ...

    def exec_stream(
        self, container: str, cmd: list[str], write: Callable[[int, bytes], None]
    ) -> int: ...

    def run(
        self, container: str, cmd: list[str], timeout: float = 300.0
    ) -> tuple[int, bytes, bytes]: ...

    def put_file(self, container: str, dest: str, data: bytes, mode: int = 0o755) -> None: ...

    def get_file(self, container: str, path: str) -> bytes: ...

    def app_log(self, container: str, tail: int = 200) -> str | None:
        """What an own-image node's program printed; None for a hoplab/node node."""
        ...

    def processes(self, container: str, mark: str) -> list[tuple[int, int, str, str]]:
        """(pid, uid, value of the environment variable `mark` or '', command line) of every
        process in the node, read from the host side (no exec)."""
        ...

    def restart(self, container: str, ready: bytes) -> None:
        """Restart a node whose processes no exec can reach, and wait for its entrypoint."""
        ...

    # --- terminals -----------------------------------------------------------------------------

    def shell(self, container: str, cmd: list[str]) -> int:
        """Attach this process's terminal to cmd on a TTY in the container; its exit code."""
        ...

    def open_tty(
        self, container: str, cmd: list[str], env: dict[str, str]
    ) -> tuple[str, socket.socket, int]:
        """Start cmd on a TTY in the container: (exec id, its raw socket, the shell's pid)."""
        ...

    def resize_tty(self, exec_id: str, rows: int, cols: int) -> None: ...

    def kill_tty(self, container: str, terminal: str, pid: int = 0) -> int:
        """Kill what the terminal started; how many processes were signalled. pid: the
        terminal's host pid, for the kill from outside when the node does not answer."""
        ...

    # --- watching segments -----------------------------------------------------------------

    def segment(self, lab: str, network: str) -> tuple[str, str]:
        """Where the lab's network is seen whole: (network namespace as Docker names it, e.g.
        "host", and the interface there). The one place that knows how segments are wired."""
        ...

    def tap(self, lab: str, network: str, bpf: str) -> tuple[str, socket.socket]:
        """Capture the network from outside the lab's nodes, in a helper labelled as part of
        the lab: (the tap's id, a raw socket carrying pcap as Docker's multiplexed stream)."""
        ...

    def untap(self, lab: str, tap: str) -> None:
        """Stop and remove one of the lab's taps (gone already: nothing to do)."""
        ...
