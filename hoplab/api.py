"""The public Python API: bring a lab up, attach to one, take one down.

    import hoplab

    with hoplab.up("compose.yaml", name="demo") as lab:     # down again when the block ends
        print(lab.node("alice").run(["ping", "-c1", lab.address("srv")]).out)

The CLI, the pytest plugin, the workshop room and the benchmark all come through here, so engine
set-up, validation before Docker, bring-up and attaching happen one way only. `import hoplab`
stays cheap: hoplab/__init__.py loads this module on first use of one of its names.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from ipaddress import IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hoplab.errors import InputError

if TYPE_CHECKING:
    from hoplab.engine.interface import EngineAPI
    from hoplab.engine.state import Progress
    from hoplab.model.topology import Topology
    from hoplab.runtime.lab import Lab


Say = Callable[[str], None]


def _quiet(*_args: object) -> None:
    pass


def from_env(client: object = None) -> EngineAPI:
    """An engine on `client` (a docker.DockerClient), else on the environment's (DOCKER_HOST...).

    Unreachable engines raise HoplabError with a hint; nothing ever silently skips. `client` is
    typed object because only hoplab.engine may name docker's types; it goes to the engine's
    factory untouched.
    """
    from hoplab.engine import connect_engine

    return connect_engine(client)


def topology(source: str | Path | Mapping[str, Any] | Topology | None = None) -> Topology:
    """A validated topology from a file path, a Compose-shaped dict, or a Topology as it is.

    None means ./compose.yaml, else the packaged default lab. A dict (a generated lab) goes
    through the same loader as a file, so it meets the same checks and errors name its keys.
    """
    from hoplab.model.topology import Topology

    if isinstance(source, Topology):
        return source
    if isinstance(source, Mapping):
        return _from_mapping(source)
    from hoplab.model.load import load
    from hoplab.resources import topology_file

    return load(topology_file(source))


def _from_mapping(doc: Mapping[str, Any]) -> Topology:
    """Dump to YAML and parse: one loader, one set of rules, for files and dicts alike."""
    import yaml

    from hoplab.model.load import parse

    try:
        text = yaml.safe_dump(_plain(doc), sort_keys=False, default_flow_style=False)
    except RecursionError:  # a dict that contains itself, or absurdly deep nesting
        raise InputError(
            "the document nests too deeply (or contains itself)",
            file="<dict>",
            key="(top level)",
            hint="a topology nests about six levels; build it from fresh dicts and lists",
        ) from None
    except yaml.YAMLError as err:
        raise InputError(
            f"not a Compose-shaped document: {err}",
            file="<dict>",
            key="(top level)",
            hint="use only dicts, lists, strings, numbers and booleans",
        ) from None
    return parse(text, "<dict>")


def _plain(value: Any) -> Any:
    """Mappings and sequences of any kind become dict and list, so safe_dump accepts them."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def __getattr__(name: str) -> Any:
    """`hoplab.api.Lab` (and so `hoplab.Lab`) is the runtime's Lab, imported on first use: the
    runtime (dpkt, the in-node programs) costs imports that `hoplab ls` and `status` skip."""
    if name == "Lab":
        from hoplab.runtime.lab import Lab

        return Lab
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def up(
    source: str | Path | Mapping[str, Any] | Topology | None = None,
    name: str | None = None,
    *,
    progress: Progress = _quiet,
    say: Say = _quiet,
    labels: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
    pool: str | IPv4Network | None = None,
    artifacts: str | Path | None = None,
    engine: EngineAPI | None = None,
    client: object = None,
    allow_unsupported: bool = False,
    heal: bool = True,
) -> Lab:
    """Bring a lab up and return it attached; a running lab that matches is left as it is.

    source: a topology file, a Compose-shaped dict, a Topology, or None (./compose.yaml, else
    the packaged default lab). name: the lab's name (default: x-hoplab.name). The topology is
    validated before the engine is reached, so bad input creates nothing. progress gets
    (phase, done, total) events, say gets one-line messages, labels go on every node, cancel
    makes a bring-up in flight roll back, pool (a private CIDR) is where moved subnets come from,
    and artifacts is where captures are saved. allow_unsupported turns the refusal of delay or
    jitter on a kernel without netem into a warning. A running lab that matches is kept, and
    each of its nodes is probed (one exec) and restarted if a root user broke it; heal=False
    skips that, for a caller that has just put the nodes right itself. The result is a context
    manager that takes the lab down; it also carries `plan` and `report` (what up did, and how
    long each phase took).
    """
    from hoplab import lifecycle
    from hoplab.model.load import check_lab_name
    from hoplab.model.plan import parse_pool
    from hoplab.runtime.lab import Lab

    topo = topology(source)
    if name is not None:
        check_lab_name(name, key="name")
    eng = engine if engine is not None else from_env(client)
    result = lifecycle.up(
        eng,
        topo,
        name,
        progress,
        say,
        labels=dict(labels or {}),
        cancel=cancel,
        pool=parse_pool(pool, "pool") if pool is not None else None,
        allow_unsupported=allow_unsupported,
        heal=heal,
    )
    lab = Lab.attach(eng, result.plan.lab, Path(artifacts) if artifacts else None)
    lab.plan, lab.report, lab.owned = result.plan, result.report, True
    return lab


def attach(
    name: str,
    *,
    artifacts: str | Path | None = None,
    engine: EngineAPI | None = None,
    client: object = None,
) -> Lab:
    """The running lab `name`, read back from the engine's labels (it refuses a stopped lab)."""
    from hoplab.model.load import check_lab_name
    from hoplab.runtime.lab import Lab

    check_lab_name(name, key="name")
    eng = engine if engine is not None else from_env(client)
    return Lab.attach(eng, name, Path(artifacts) if artifacts else None)


def down(
    name: str,
    *,
    progress: Progress = _quiet,
    engine: EngineAPI | None = None,
    client: object = None,
) -> tuple[int, int]:
    """Remove the lab's containers and networks; returns how many of each were removed.

    A lab that does not exist is not an error (0, 0): down is safe to call twice.
    """
    from hoplab.model.load import check_lab_name

    check_lab_name(name, key="name")
    eng = engine if engine is not None else from_env(client)
    return eng.down(name, progress)
