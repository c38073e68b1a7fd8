"""Files hoplab ships as package data, found through importlib.resources.

Where they live in the repository (hosts/, compose.yaml, hoplab/grading/assignments/) and how
they are found at run time are separate questions: the wheel maps them into the package, and an
editable install maps the same names onto the checkout. Nothing here walks up from __file__.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

DEFAULT_FILE = "compose.yaml"


def _path(package: str, *parts: str) -> Path:
    """A real directory or file: docker's build context and shutil need paths, not Traversables.

    Wheels and editable installs both unpack to the file system, so the Traversable is a Path; a
    zipped install is refused with a message instead of a confusing build error later.
    """
    found = files(package).joinpath(*parts)
    if not isinstance(found, Path):
        raise RuntimeError(
            f"hoplab must be installed unzipped: {package} is not on the file system"
        )
    return found


def hosts_dir() -> Path:
    """The node image's build context (HOPLAB_HOSTS overrides it, for a forked image)."""
    env = os.environ.get("HOPLAB_HOSTS")
    return Path(env) if env else _path("hoplab.hosts")


def programs_dir() -> Path:
    """The programs copied into /opt/hoplab of every node."""
    return hosts_dir() / "programs"


def assignments_dir() -> Path:
    """Participant-facing files per assignment (HOPLAB_ASSIGNMENTS overrides it)."""
    env = os.environ.get("HOPLAB_ASSIGNMENTS")
    return Path(env) if env else _path("hoplab.grading", "assignments")


def default_lab() -> Path:
    """The packaged default lab: the repository's compose.yaml."""
    return _path("hoplab.topologies", DEFAULT_FILE)


def topology_file(given: str | Path | None) -> Path:
    """The file a command reads: the one given, else ./compose.yaml, else the packaged default.

    A user in their own folder without a compose.yaml gets the default lab, exactly as in the
    clone; a file named explicitly is never replaced by the default.
    """
    if given is not None:
        return Path(given)
    local = Path(DEFAULT_FILE)
    return local if local.exists() else default_lab()
