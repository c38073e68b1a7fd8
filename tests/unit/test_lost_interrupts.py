"""A Ctrl-C that lands inside a finalizer must not be lost or printed as a traceback.

CPython cannot raise out of a finalizer (weakref.finalize, __del__): it prints "Exception ignored
in ..." with a traceback and carries on, so the Ctrl-C was swallowed. A CI run caught exactly that
in `hoplab run` (tests/test_faults.py).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import weakref

import pytest

from hoplab.interrupts import finalizer_interrupts_redelivered


class _Owner:
    pass


def _raise_in_a_finalizer(error: BaseException) -> None:
    def fail() -> None:
        raise error

    owner = _Owner()
    weakref.finalize(owner, fail)
    del owner  # the finalizer runs here, as it would when a Ctrl-C lands in it


def test_a_ctrl_c_swallowed_by_a_finalizer_reaches_the_main_flow(capsys):
    with finalizer_interrupts_redelivered(), pytest.raises(KeyboardInterrupt):
        _raise_in_a_finalizer(KeyboardInterrupt())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.01)
    assert "Traceback" not in capsys.readouterr().err


def test_other_unraisable_errors_are_still_reported(monkeypatch):
    seen: list[type[BaseException]] = []

    def report(unraisable: object) -> None:
        seen.append(unraisable.exc_type)  # type: ignore[attr-defined]

    monkeypatch.setattr(sys, "unraisablehook", report)
    with finalizer_interrupts_redelivered():
        _raise_in_a_finalizer(ValueError("a real bug"))
    assert seen == [ValueError]
    assert sys.unraisablehook is report  # the previous hook is back


def test_the_cli_exits_130_without_a_traceback_when_the_ctrl_c_lands_in_a_finalizer():
    script = textwrap.dedent(
        """
        import time, weakref
        from hoplab.cli import commands, main

        class Owner:
            pass

        def fail():
            raise KeyboardInterrupt

        def dispatch(argv):
            owner = Owner()
            weakref.finalize(owner, fail)
            del owner
            time.sleep(10)
            return 0

        commands.dispatch = dispatch
        raise SystemExit(main([]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "interrupted" in done.stderr
