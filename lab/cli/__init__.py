"""The `hoplab` command line."""

from hoplab.cli.commands import main

__all__ = ["main"]
