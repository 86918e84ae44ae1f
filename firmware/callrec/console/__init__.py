"""The technicians' serial console: line editing, the shell of commands, the port's session."""

from callrec.console.lineedit import LineEditor
from callrec.console.login import Gate, run_passwd
from callrec.console.session import run_console
from callrec.console.shell import Shell

__all__ = ["Gate", "LineEditor", "Shell", "run_console", "run_passwd"]
