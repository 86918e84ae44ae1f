"""`[console]`: who may use the technicians' serial console, and what its maintenance commands run.

The console shows every caller's number, so it asks for a passphrase. The passphrase itself is never
in the file, only its slow salted hash (`callrec passwd` writes it). A console with no passphrase runs
only when `open = true` says so explicitly: an appliance that ships with a wide-open maintenance
port by accident is worse than one whose technician must decide.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, ValidationError, field_validator

from callrec.config.toml import TomlModel, toml_document
from callrec.errors import CallrecError

_HASH = re.compile(r"^scrypt\$[A-Za-z0-9+/]{11,}={0,2}\$[A-Za-z0-9+/]{43}=$")


class ConsoleConfig(TomlModel):
    passphrase_hash: str | None = Field(
        None, description="scrypt hash of the technician passphrase; written by `callrec passwd`, never by hand")
    open: bool = Field(False, description="Allow a console with no passphrase (every session says so)")
    idle_logout_s: float = Field(600.0, ge=1, le=86400, description="Log out after this long without input")
    max_failures: int = Field(5, ge=1, le=100, description="Wrong passphrases before the console locks")
    lockout_s: float = Field(60.0, ge=1, le=3600, description="How long the console stays locked")
    restart_command: tuple[str, ...] = Field(
        ("systemctl", "restart", "callrec.service"), min_length=1,
        description="What `restart` runs (the console's user may do this through the polkit rule of the image)")
    reboot_command: tuple[str, ...] = Field(("systemctl", "reboot"), min_length=1,
                                            description="What `reboot` runs after its confirmation")

    @field_validator("passphrase_hash")
    @classmethod
    def _a_hash(cls, value: str | None) -> str | None:
        if value is not None and not _HASH.match(value):
            raise ValueError("not a passphrase hash; set it with `callrec passwd --config FILE`, which writes "
                             "the scrypt hash (the passphrase itself never goes into the file)")
        return value


def salvage_console(path: Path | None) -> ConsoleConfig:
    """The `[console]` table of a file that is unusable elsewhere: the console must still open (it is
    how a technician finds out what is wrong) and still ask for the passphrase. A file whose console
    table cannot be read either gives the closed default (whatever the file holds: this runs at the
    console's start, and an exception here would be a restart loop under Restart=always)."""
    if path is None:
        return ConsoleConfig()
    try:
        table = toml_document(path.read_bytes(), str(path), CallrecError).get("console", {})
        return ConsoleConfig.model_validate(table if isinstance(table, dict) else {})
    except (OSError, CallrecError, ValidationError):
        return ConsoleConfig()
