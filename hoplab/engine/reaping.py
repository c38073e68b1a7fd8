"""Which labs a dead pytest run left behind: the plugin's owner-pid reaping, as pure decisions.

The plugin labels every node it makes with the pid, the kernel start time and the host of the
pytest process that owns it, and names the lab pt<pid>-<host tag>-<n>. A lab is an orphan when
that process is gone (or its pid now names another process). The process probe is passed in, so
every branch of the decision is covered by unit tests without Docker or real processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from hoplab.errors import HoplabError
from hoplab.model import labels as L

if TYPE_CHECKING:  # annotations only: the pytest plugin imports this module while it is inert
    from hoplab.engine.interface import EngineAPI
    from hoplab.engine.state import LabState

NAME_PREFIX = "pt"
NAME_RE = re.compile(rf"^{NAME_PREFIX}(?P<pid>\d+)-(?P<host>[0-9a-f]{{4}})-\d+$")
GONE, UNKNOWN = "", "?"  # what a process probe answers besides a start time

StartOf = Callable[[int], str]


def process_start(pid: int) -> str:
    """The kernel's start time of pid (clock ticks since boot), or GONE if there is no such process.

    A pid alone can be reused by a later process; pid plus start time names one process.
    Where /proc is missing, UNKNOWN stands for "alive, start unknown".
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return GONE
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return GONE
        except PermissionError:
            pass
        return UNKNOWN
    except OSError:
        return UNKNOWN
    # Field 22; the command name (field 2) may hold spaces, so count from its closing paren.
    return stat.rsplit(")", 1)[1].split()[19]


def host_tag(host: str) -> str:
    """Four hex digits of the host name, carried in lab names (networks carry no pid labels)."""
    return hashlib.sha256(host.encode()).hexdigest()[:4]


def lab_name_for(pid: int, n: int, host: str) -> str:
    """pt<pid>-<host tag>-<n>: who made a lab can be read from its name alone."""
    return f"{NAME_PREFIX}{pid}-{host_tag(host)}-{n}"


def owner_labels(pid: int, start: str, host: str) -> dict[str, str]:
    """The labels that tie a lab to one pytest process on one host."""
    return {L.PYTEST_PID: str(pid), L.PYTEST_START: start, L.PYTEST_HOST: host}


def is_orphan(state: LabState, host: str, start_of: StartOf) -> bool:
    """A lab made by a pytest process on this host that no longer runs: safe to remove.

    Labs of other hosts (a shared remote engine), labs without the labels, and labs whose owner
    still runs (or may: UNKNOWN) are never orphans. A run killed half-way through teardown can
    leave networks alone, which carry no pid labels: their lab's name says which pid and host.
    """
    labels = state.labels
    if L.PYTEST_PID not in labels:
        named = NAME_RE.match(state.name)
        return (
            not state.nodes
            and named is not None
            and named["host"] == host_tag(host)
            and start_of(int(named["pid"])) == GONE
        )
    if labels.get(L.PYTEST_HOST) != host:
        return False
    try:
        pid = int(labels[L.PYTEST_PID])
    except ValueError:
        return False
    now = start_of(pid)
    if now == UNKNOWN:
        return False
    return now == GONE or now != labels.get(L.PYTEST_START, now)


def orphans(states: Iterable[LabState], host: str, start_of: StartOf) -> list[str]:
    """Names of the orphan labs among states, in order."""
    return [s.name for s in states if is_orphan(s, host, start_of)]


def reap(engine: EngineAPI, host: str, start_of: StartOf = process_start) -> list[str]:
    """Remove the orphan labs of this host; returns their names. A lab that cannot be removed
    now is left for the next run rather than failing this one."""
    gone = orphans(engine.labs(), host, start_of)
    for name in gone:
        with contextlib.suppress(HoplabError):
            engine.down(name)
    return gone
