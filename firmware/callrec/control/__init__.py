"""The control API: the commands every front end offers, the local socket that serves them, its client."""

from callrec.control.api import COMMANDS, CommandError, Device, Refused, parse_object, request_id, validate_command
from callrec.control.client import DEFAULT_SOCKET, ControlClient, ServiceUnreachable
from callrec.control.server import MAX_REQUEST_BYTES, ControlServer

__all__ = ["COMMANDS", "CommandError", "ControlClient", "ControlServer", "DEFAULT_SOCKET", "Device",
           "MAX_REQUEST_BYTES", "Refused", "ServiceUnreachable", "parse_object", "request_id", "validate_command"]
