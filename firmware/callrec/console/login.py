"""Who may use the console: the technician passphrase, the lockout, and `callrec passwd`.

Pure policy on injected time, so the lockout is tested to the second without waiting: the session
asks `Gate.attempt(passphrase, now)` and says what it answers. Failures count across sessions of the
same process (a hang-up does not reset them: pulling the cable is not a way round the lockout).
"""

from __future__ import annotations

import getpass
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from callrec.config import ConfigError, ConsoleConfig, EditError, set_key
from callrec.errors import CallrecError
from callrec.evidence import check_password, hash_password

log = logging.getLogger(__name__)

MIN_PASSPHRASE_CHARS = 8
MAX_PASSPHRASE_CHARS = 200


@dataclass(frozen=True)
class Attempt:
    ok: bool
    locked_s: float = 0.0      # > 0: the console is locked for this long (now, or from this failure on)
    left: int = 0              # wrong: how many tries remain before the lockout
    just_locked: bool = False  # this failure was the last allowed: the lockout starts now


class Gate:
    def __init__(self, settings: ConsoleConfig) -> None:
        self.settings = settings
        self._failures = 0
        self._locked_until = 0.0

    @property
    def required(self) -> bool:
        return self.settings.passphrase_hash is not None

    @property
    def closed(self) -> bool:
        """No passphrase and not explicitly open: the console serves nobody."""
        return not self.required and not self.settings.open

    def locked_for(self, now: float) -> float:
        return max(0.0, self._locked_until - now)

    def attempt(self, passphrase: str, now: float) -> Attempt:
        if self.locked_for(now) > 0:
            return Attempt(False, locked_s=self.locked_for(now))
        stored = self.settings.passphrase_hash
        if stored is not None and check_password(passphrase[:MAX_PASSPHRASE_CHARS], stored):
            self._failures = 0
            return Attempt(True)
        self._failures += 1
        if self._failures >= self.settings.max_failures:
            self._failures = 0
            self._locked_until = now + self.settings.lockout_s
            return Attempt(False, locked_s=self.settings.lockout_s, just_locked=True)
        return Attempt(False, left=self.settings.max_failures - self._failures)


class PasswdError(CallrecError, ValueError):
    """The passphrase was not set; the message says why."""


def read_passphrase(stdin: TextIO) -> str:
    """From the terminal (asked twice, not echoed), or one line of standard input when it is not one."""
    if stdin.isatty():
        first = getpass.getpass("new technician passphrase: ")
        if getpass.getpass("again: ") != first:
            raise PasswdError("the two passphrases differ; nothing was changed")
        passphrase = first
    else:
        passphrase = stdin.readline().rstrip("\r\n")
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise PasswdError(f"the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters; nothing was changed")
    if len(passphrase) > MAX_PASSPHRASE_CHARS:
        raise PasswdError(f"the passphrase may have at most {MAX_PASSPHRASE_CHARS} characters; nothing was changed")
    return passphrase


def set_passphrase(path: Path, passphrase: str) -> None:
    """Write the hash into `console.passphrase_hash` of the file, keeping the rest as it was."""
    try:
        set_key(path, "console.passphrase_hash", hash_password(passphrase))
    except (EditError, ConfigError) as error:
        raise PasswdError(str(error)) from None


def run_passwd(path: Path, stdin: TextIO = sys.stdin) -> int:
    """`callrec passwd`: exit 0 when set, 1 with the reason otherwise."""
    try:
        set_passphrase(path, read_passphrase(stdin))
    except PasswdError as error:
        print(f"callrec passwd: {error}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, EOFError):
        print("callrec passwd: cancelled; nothing was changed", file=sys.stderr)
        return 1
    print(f"technician passphrase set in {path} (console.passphrase_hash); it applies from the next console "
          "session")
    log.debug("console passphrase changed in %s", path)
    return 0
