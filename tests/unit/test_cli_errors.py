"""How the CLI prints hoplab's errors: verbatim, whatever brackets a file, key or hint holds."""

from __future__ import annotations

import argparse

import pytest

from hoplab.cli import commands
from hoplab.errors import InputError


def test_an_error_with_brackets_is_printed_verbatim(monkeypatch, capsys) -> None:
    """rich reads '[labs=N]' as markup and drops it; a user's key or path must survive."""

    def bad(args: argparse.Namespace) -> int:
        raise InputError(
            "engines.txt:3: key [labs=4x]: not a number", hint="write [labs=N] or [nodes=N]"
        )

    monkeypatch.setitem(commands.COMMANDS, "ls", bad)
    assert commands.dispatch(["ls"]) == 2
    err = capsys.readouterr().err
    assert "key [labs=4x]: not a number" in err
    assert "write [labs=N] or [nodes=N]" in err


@pytest.mark.parametrize("text", ["[red]x[/]", "[/]", "a [b] c"])
def test_markup_like_text_in_an_error_never_breaks_the_printer(monkeypatch, capsys, text) -> None:
    def bad(args: argparse.Namespace) -> int:
        raise InputError(text)

    monkeypatch.setitem(commands.COMMANDS, "ls", bad)
    assert commands.dispatch(["ls"]) == 2
    assert text in capsys.readouterr().err
