"""Secret links: one token per participant and one for the instructor, kept with the room.

Only SHA-256 hashes of the tokens are stored (state dir 0700, file 0600), so the state file does
not let anyone in; the links file the instructor hands out holds the tokens themselves (0600).
A token is 32 random bytes (256 bits); a lookup compares it against every stored hash in constant
time, so neither the timing nor the order of the room tells anything about a token.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

INSTRUCTOR = ""  # the instructor's entry; participant names are never empty
TOKEN_BYTES = 32


def state_dir(room: str) -> Path:
    """The room's own state: $HOPLAB_STATE, else $XDG_STATE_HOME/hoplab, else ~/.local/state."""
    base = os.environ.get("HOPLAB_STATE") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "hoplab"
    )
    path = Path(base) / "workshops" / room
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)  # mkdir's mode is masked by umask, and an old dir may be wider
    return path


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def write_private(path: Path, text: str) -> None:
    """Write a file that only its owner can read, atomically, never briefly world-readable."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Who:
    """Whom a token belongs to: a participant (by name), or the instructor."""

    participant: str

    @property
    def instructor(self) -> bool:
        return self.participant == INSTRUCTOR


class Tokens:
    """The room's token hashes, read from and written to `<state dir>/tokens.json`."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "tokens.json"
        self._hashes: dict[str, str] = {}
        self._mtime = 0.0
        self._reload()

    def _reload(self) -> None:
        """Read the file again when another process changed it: `serve --revoke NAME
        --issue-only` takes effect in the serving process at its next request."""
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._hashes, self._mtime = {}, 0.0
            return
        if mtime != self._mtime:
            self._hashes = dict(json.loads(self.path.read_text()).get("hashes", {}))
            self._mtime = mtime

    def _save(self) -> None:
        write_private(self.path, json.dumps({"hashes": self._hashes}, indent=1, sort_keys=True))
        self._mtime = self.path.stat().st_mtime

    def has(self, participant: str) -> bool:
        self._reload()
        return participant in self._hashes

    def issue(self, participant: str) -> str:
        """A new token for the participant (INSTRUCTOR for the instructor); the old one dies."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self._reload()
        self._hashes[participant] = _digest(token)
        self._save()
        return token

    def revoke(self, participant: str) -> bool:
        self._reload()
        found = self._hashes.pop(participant, None) is not None
        self._save()
        return found

    def who(self, token: str | None) -> Who | None:
        """The token's owner, or None; every stored hash is compared, in constant time each."""
        if not token or len(token) > 200:
            return None
        self._reload()
        digest = _digest(token)
        found = None
        for participant, stored in self._hashes.items():
            if hmac.compare_digest(digest, stored):
                found = participant
        return None if found is None else Who(found)


def read_links(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as f:
        return {
            row[0]: row[1] for row in csv.reader(f) if len(row) == 2 and row[0] != "participant"
        }


def write_links(path: Path, links: dict[str, str]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["participant", "url"])
    for participant in sorted(links):
        w.writerow([participant, links[participant]])
    write_private(path, buf.getvalue())
