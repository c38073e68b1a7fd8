"""How docker-py reaches an engine: its SSH transport is loaded only when a command may need it.

docker-py imports its SSH transport, and so paramiko (about 0.15 s of CPU here), whenever
paramiko is installed (the portal extra's webssh brings it in). Only an ssh:// engine uses it:
DOCKER_HOST=ssh://..., or an --engine URL or Docker context that the command names. This module
imports nothing heavy, so the command line can call it before docker is imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

SSH_MODULE = "docker.transport.sshconn"
ENGINE_OPTIONS = ("--engine", "--engines")  # URLs or contexts that may be ssh://


def may_use_ssh(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """True when this command may reach an engine over SSH. Named engines count whatever their
    scheme: a context's endpoint is only read later, from the user's Docker config."""
    if environ.get("DOCKER_HOST", "").startswith("ssh://"):
        return True
    return any(arg.split("=", 1)[0] in ENGINE_OPTIONS for arg in argv)


def skip_unused_ssh(argv: Sequence[str]) -> None:
    """Make the SSH transport unimportable for a command that cannot use it, exactly as when the
    optional `docker[ssh]` is not installed (a case docker-py handles itself). Only for a
    process hoplab owns, such as the command line: never in a library or plugin, whose host
    process may reach its own ssh:// engines."""
    if not may_use_ssh(argv, os.environ):
        sys.modules.setdefault(SSH_MODULE, None)  # type: ignore[arg-type]
