"""The office's web viewer: find, listen to, annotate and disclose recordings (docs/viewer.md).

Only `commands` is imported by the CLI; the web stack (the `office` extra) loads when it runs."""

from callrec.viewer.commands import make_viewer, serve
from callrec.viewer.commands import register as register_commands
from callrec.viewer.users import ROLES, Users, UsersError

__all__ = ["ROLES", "Users", "UsersError", "make_viewer", "register_commands", "serve"]
