"""Errors that carry their own exit code, so the CLI never needs to guess."""

from __future__ import annotations


class HoplabError(Exception):
    """A failure of the lab or the engine: exit code 1."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class InputError(HoplabError):
    """Bad input from the user (a topology file, an argument): exit code 2, nothing created."""

    exit_code = 2

    def __init__(
        self, message: str, *, file: str = "", line: int = 0, key: str = "", hint: str = ""
    ) -> None:
        self.file, self.line, self.key = file, line, key
        where = file + (f":{line}" if line else "") if file else ""
        prefix = f"{where}: " if where else ""
        keypart = f"{key}: " if key else ""
        super().__init__(f"{prefix}{keypart}{message}", hint)


class SubnetTaken(HoplabError):
    """Another network took a planned subnet between planning and creation: plan again."""


class Unsupported(HoplabError):
    """The environment cannot do this (e.g. delay without netem): an ENV result, never faked."""


class Cancelled(HoplabError):
    """The caller asked a bring-up to stop (a room on Ctrl-C); the lab rolled itself back."""


class Overdue(HoplabError):
    """An exec into a node ran past its deadline (root there can make any program hang); its
    processes were killed from outside the node (hoplab.engine.inside)."""
