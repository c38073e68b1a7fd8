"""The topology file being read: every input error made through it names the file, line and key.

One class for the whole model: compose.py, images.py and validate.py all take it, so an error
from any of them points at the same place in the same words.
"""

from __future__ import annotations

from dataclasses import dataclass

from hoplab.errors import InputError


@dataclass(frozen=True)
class SourceFile:
    source: str  # the file's path as the user gave it ("" for a topology built in memory)

    def fail(self, msg: str, line: int, key: str, hint: str = "") -> InputError:
        return InputError(msg, file=self.source, line=line, key=key, hint=hint)
