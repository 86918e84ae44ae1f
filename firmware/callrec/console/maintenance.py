"""The console's maintenance actions: change a setting, restart the recorder, reboot the appliance.

Each is audited by the session that asked (`console:<port>`); each says plainly what it did and
what is still to do (a setting the recorder reads at start needs `restart`).
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from callrec.config import Config, EditError, parse_value, set_key

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 60.0


def config_set(path: Path, key: str, raw: str) -> tuple[str, Config | None]:
    """Validated exactly as `check-config` does, then written with a backup; (answer, new config)."""
    from callrec.app import config_problems

    if key.startswith("console."):
        return (f"not changed: {key} decides who may use this console and what it may run; an administrator "
                "changes it in the file (the passphrase with `callrec passwd`)"), None
    try:
        edit = set_key(path, key, parse_value(raw), extra_check=config_problems)
    except EditError as error:
        return str(error), None
    shown = "(hidden)" if "pass" in key else repr(edit.new)
    was = "(hidden)" if "pass" in key else ("unset" if edit.old is None else repr(edit.old))
    answer = [f"{key} = {shown} (was {was}), written to {path}"
              + (f"; the previous file is {edit.backup}" if edit.backup else "")]
    if edit.restart_needed:
        answer.append("restart needed: the recorder reads this at start; type `restart` when the lines are idle")
    else:
        answer.append("no restart needed: the console uses it from its next session")
    return "\n".join(answer), edit.config


def run_system(command: tuple[str, ...], what: str) -> str:
    """Run a system command (the unit's `restart_command`/`reboot_command`); its outcome as text."""
    log.warning("console: %s: running %s", what, " ".join(command))
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                              check=False)
    except FileNotFoundError:
        return f"{what} failed: {command[0]} is not installed"
    except subprocess.TimeoutExpired:
        return f"{what}: {command[0]} did not finish in {COMMAND_TIMEOUT_S:.0f} s"
    except OSError as error:
        return f"{what} failed: {error}"
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        return f"{what} failed (exit {done.returncode}): {detail[-1] if detail else 'no message'}"
    return f"{what}: done"
