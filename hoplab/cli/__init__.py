"""The `hoplab` command line.

This module is the entry point, so it imports nothing but the standard library's sys: Ctrl-C is
handled before the first heavy import, and a Ctrl-C during those imports is a clean exit 130 too.
"""

from __future__ import annotations

import sys

INTERRUPTED = "interrupted: nothing half-made was left behind\n"


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 success, 1 failure, 2 bad input, 130 interrupted (never a traceback)."""
    try:
        from hoplab.engine.transport import skip_unused_ssh

        skip_unused_ssh(sys.argv[1:] if argv is None else argv)
        from hoplab.cli.commands import dispatch
        from hoplab.interrupts import finalizer_interrupts_redelivered

        with finalizer_interrupts_redelivered():
            return dispatch(argv)
    except KeyboardInterrupt:
        import signal

        # A second Ctrl-C while the message is written must not turn into a traceback either.
        try:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not the main thread: there is no handler to change
            previous = None
        try:
            sys.stderr.write(INTERRUPTED)
            sys.stderr.flush()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        return 130


__all__ = ["main"]
