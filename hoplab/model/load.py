"""Load a Compose file into the frozen model, rejecting anything hoplab would misread.

Every error names the file, the line and the key, and says how to mend it: a topology is the one
input learners write by hand, so a silent guess here becomes a confusing lab later. Three steps,
each in a module of its own: safe YAML with line numbers (lined_yaml), the Compose schema
(compose), and the checks across the whole graph (validate).
"""

from __future__ import annotations

from pathlib import Path

from hoplab.errors import InputError
from hoplab.model.compose import (  # re-exported: callers check names and counts through load
    LAB_NAME_HINT,
    MAX_NETWORKS,
    MAX_NODES,
    check_lab_name,
    read,
)
from hoplab.model.lined_yaml import MAX_YAML_NODES, key_near, parse_yaml
from hoplab.model.topology import Topology
from hoplab.model.validate import validate

__all__ = [
    "LAB_NAME_HINT",
    "MAX_FILE_BYTES",
    "MAX_NETWORKS",
    "MAX_NODES",
    "MAX_YAML_NODES",
    "check_lab_name",
    "load",
    "parse",
]

MAX_FILE_BYTES = 1 << 20


def parse(text: str, source: str = "<string>") -> Topology:
    """Parse and validate topology text; raise InputError on the first problem found."""
    doc = parse_yaml(text, source)
    topo = read(doc, source)
    validate(topo, doc)
    return topo


def load(path: str | Path) -> Topology:
    """Read and parse a topology file; size is capped before YAML ever sees it.

    The cap is on bytes read, not on what stat says: /dev/zero or a pipe report size 0.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise InputError(
            f"cannot read topology: {err.strerror}",
            file=str(p),
            line=1,
            key="(file)",
            hint="pass an existing Compose file with -f FILE",
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise InputError(
            f"file is larger than {MAX_FILE_BYTES // 1024} KiB",
            file=str(p),
            line=data.count(b"\n", 0, MAX_FILE_BYTES) + 1,
            key="(file)",
            hint="a topology is a few dozen lines; is this the right file?",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise InputError(
            f"file is not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start})",
            file=str(p),
            line=line,
            key=key_near(data.decode("utf-8", errors="replace"), line),
            hint="save the file as UTF-8",
        ) from None
    return parse(text, str(p))
