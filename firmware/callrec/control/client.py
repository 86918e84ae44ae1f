"""The console's and the CLI's side of the control socket (control/server.py has the wire format)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, cast

from callrec.control.api import CommandError
from callrec.errors import CallrecError

DEFAULT_SOCKET = Path("/run/callrec/control.sock")


class ServiceUnreachable(CallrecError, ConnectionError):
    """Nobody answers on the control socket: the service is not running (or not yet)."""


class ControlClient:
    """The console's and the CLI's side: one short connection per request.

    Connecting per request means a restarted service is picked up without any reconnect logic, and
    an idle console holds no server thread.
    """

    def __init__(self, path: Path = DEFAULT_SOCKET, timeout_s: float = 8.0, by: str | None = None) -> None:
        """`by`: who this client speaks for (the console says `console:<port>`), for the audit log."""
        self.by = by
        self.path = Path(path)
        self.timeout_s = timeout_s   # longer than the core's own 5 s command timeout
        self._next_id = 0

    def request(self, cmd: str, **fields: Any) -> Any:
        """Send one request and return its result; CommandError when refused."""
        self._next_id += 1
        payload = json.dumps({"id": self._next_id, "cmd": cmd, **fields}, ensure_ascii=False).encode() + b"\n"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout_s)
            try:
                sock.connect(str(self.path))
            except (FileNotFoundError, ConnectionRefusedError) as error:
                raise ServiceUnreachable(f"no service answers on {self.path} ({error.strerror})") from None
            except PermissionError:
                raise ServiceUnreachable(f"no permission to open {self.path} (run as user callrec)") from None
            try:
                sock.sendall(payload)
                reply = _read_line(sock)
            except TimeoutError:
                raise ServiceUnreachable(f"the service did not answer on {self.path} in time") from None
            except OSError as error:
                raise ServiceUnreachable(f"the connection to {self.path} failed: {error}") from None
        try:
            response = json.loads(reply)
        except ValueError:
            raise ServiceUnreachable(f"garbled answer on {self.path}") from None
        if not response.get("ok"):
            raise CommandError(response.get("error") or "refused")
        return response.get("result")

    def status(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self.request("status"))

    def alarms(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self.request("alarms"))

    def stats(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.request("stats"))

    def levels(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.request("levels"))

    def diagnostic(self, name: str, timeout_s: float | None = None) -> dict[str, Any]:
        """`gpio`, `net` or `selftest` (which plays a tone per line and probes the network: slow)."""
        saved = self.timeout_s
        self.timeout_s = max(saved, timeout_s or 0)
        try:
            return cast(dict[str, Any], self.request(name))
        finally:
            self.timeout_s = saved

    def command(self, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {"name": name, "args": args or {}}
        if self.by:
            fields["by"] = self.by
        return cast(dict[str, Any], self.request("command", **fields))


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("the service closed the connection")
        data += chunk
    return data.split(b"\n", 1)[0]
