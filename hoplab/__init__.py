"""hoplab: a containerized multi-host network lab driven through docker-py.

    import hoplab

    with hoplab.up() as lab:                        # the packaged default lab, down at the end
        lab.node("alice").run(["ping", "-c1", lab.address("srv")])

The public names load on first use (PEP 562): `import hoplab` costs no docker, no rich, so the
command line and the pytest plugin start fast and pay only for what they use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it; everything public comes from hoplab.api or hoplab.errors.
_EXPORTS = {
    "up": "hoplab.api",
    "attach": "hoplab.api",
    "down": "hoplab.api",
    "topology": "hoplab.api",
    "from_env": "hoplab.api",
    "Lab": "hoplab.api",
    "HoplabError": "hoplab.errors",
    "InputError": "hoplab.errors",
    "Unsupported": "hoplab.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from hoplab.api import Lab, attach, down, from_env, topology, up  # noqa: F401
    from hoplab.errors import HoplabError, InputError, Unsupported  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hoplab' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
