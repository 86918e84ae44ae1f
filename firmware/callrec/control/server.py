"""The local control socket: the `Device` protocol as JSON lines on an AF_UNIX stream socket.

The serial console runs as its own process (its own unit on the UART, with no IP at all), so it
needs a way into the running service that is not the network. A Unix socket in the service's
runtime directory is reachable only by processes that may open that path: the socket is mode 0660
in /run/callrec (0750, owned by callrec), so file permissions are the access control and no
password is needed. Each peer's pid and uid are logged from SO_PEERCRED.

Wire format, one JSON object per line each way:

    → {"id": 7, "cmd": "status" | "alarms" | "stats" | "levels" | "gpio" | "net" | "selftest" | "command",
       "name": ..., "args": {...}}
    ← {"id": 7, "ok": true, "error": null, "result": ...}

Only the Device protocol is exposed, and `command` only for the names in the MQTT command table
(the same strict argument models), so nothing here can delete or export a recording. Bad input of
any kind is answered with `ok: false` and never reaches the Device; a client that hangs up
mid-request costs one thread that ends at once.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import stat
import struct
import threading
import time
from pathlib import Path
from typing import Any

from callrec.control.api import (
    CommandError,
    Device,
    Refused,
    actor_name,
    parse_object,
    request_id,
    validate_command,
)

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660
MAX_REQUEST_BYTES = 8192
MAX_CLIENTS = 16
IDLE_TIMEOUT_S = 60.0
_QUERIES = ("status", "alarms", "stats", "levels", "gpio", "net", "selftest")
_KEYS = {"id", "cmd", "name", "args", "by"}


class ControlServer:
    """Serves the Device on a Unix socket, one thread per client, until `stop()`."""

    def __init__(self, device: Device, path: Path, *, max_clients: int = MAX_CLIENTS,
                 idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        self.device = device
        self.path = Path(path)
        self._max_clients = max_clients
        self._idle_timeout_s = idle_timeout_s
        self._listener: socket.socket | None = None
        self._inode: int | None = None
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind (replacing a stale socket a killed service left behind) and start accepting.

        Raises OSError when the path cannot be bound: the caller decides whether that is fatal.
        """
        _remove_stale(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.path))
            os.chmod(self.path, SOCKET_MODE)
            listener.listen(MAX_CLIENTS)
            listener.settimeout(0.5)   # accept() wakes up to notice stop()
        except OSError:
            listener.close()
            raise
        self._inode = os.stat(self.path).st_ino
        self._listener = listener
        self._thread = threading.Thread(target=self._accept_loop, name="control-server", daemon=True)
        self._thread.start()
        log.info("control socket listening on %s", self.path)

    def stop(self) -> None:
        """Stop accepting, hang up on every client, remove the socket file if it is still ours."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            if self._inode is not None and os.stat(self.path).st_ino == self._inode:
                self.path.unlink()
        log.info("control socket %s closed", self.path)

    # ---- connections -----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as error:
                if self._stopping.is_set():
                    return
                log.warning("control socket accept failed: %s", error)
                self._stopping.wait(0.5)
                continue
            with self._lock:
                crowded = len(self._clients) >= self._max_clients
                if not crowded:
                    self._clients.add(client)
            if crowded:
                self._send(client, _response(None, error=f"too many clients (at most {self._max_clients})"))
                client.close()
                continue
            threading.Thread(target=self._serve, args=(client,), name="control-client", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        peer = _peer(client)
        log.debug("control client connected (%s)", peer)
        client.settimeout(self._idle_timeout_s)
        buffer = b""
        try:
            while not self._stopping.is_set():
                try:
                    chunk = client.recv(4096)
                except OSError:   # idle too long, or reset by the client
                    return
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if len(line) > MAX_REQUEST_BYTES:   # however it arrived, in one chunk or several
                        answer = _response(None, error=f"request longer than {MAX_REQUEST_BYTES} bytes")
                    elif line.strip():
                        answer = self.respond(line, peer)
                    else:
                        continue
                    if not self._send(client, answer):
                        return
                if len(buffer) > MAX_REQUEST_BYTES:
                    # No newline in sight: the stream cannot be resynchronised, so answer and hang up.
                    self._send(client, _response(None, error=f"request longer than {MAX_REQUEST_BYTES} bytes"))
                    _linger(client)
                    return
        finally:
            with self._lock:
                self._clients.discard(client)
            client.close()
            log.debug("control client disconnected (%s)", peer)

    @staticmethod
    def _send(client: socket.socket, response: dict[str, Any]) -> bool:
        data = json.dumps(response, ensure_ascii=False, default=str).encode() + b"\n"
        try:
            client.sendall(data)
        except OSError:   # the client went away before its answer: nothing to do
            return False
        return True

    # ---- requests --------------------------------------------------------------------------------

    def respond(self, line: bytes, peer: str = "in-process") -> dict[str, Any]:
        """One request line → one response; never raises."""
        rid: str | int | None = None
        try:
            body = _parse(line)
            rid = request_id(body, required=False)
            return _response(rid, result=self._dispatch(body, peer))
        except Refused as error:
            log.debug("control request refused (%s): %s", peer, error)
            return _response(rid, error=str(error))
        except CommandError as error:
            return _response(rid, error=str(error) or type(error).__name__)
        except TimeoutError:
            return _response(rid, error="the recorder did not answer in time; see the device log")
        except Exception:   # a bug behind the Device must not take the socket down
            log.exception("control request failed inside the device (%s)", peer)
            return _response(rid, error="internal error; see the device log")

    def _dispatch(self, body: dict[str, Any], peer: str) -> Any:
        cmd = body.get("cmd")
        if cmd in _QUERIES:
            stray = sorted(set(body) - {"id", "cmd"})
            if stray:
                raise Refused(f"{cmd!r} takes no {', '.join(stray)}")
            if cmd == "status":
                return self.device.line_states()
            if cmd == "alarms":
                return self.device.active_alarms()
            if cmd == "stats":
                return self.device.stats()
            if cmd == "levels":
                return self.device.command("levels", {})
            return self.device.diagnostic(cmd)
        if cmd != "command":
            shown = cmd[:32] if isinstance(cmd, str) else cmd
            raise Refused(f"unknown cmd {shown!r}; known: {', '.join((*_QUERIES, 'command'))}")
        name, args = body.get("name"), body.get("args", {})
        validated = validate_command(name, args)
        assert isinstance(name, str)  # validate_command refuses any other name
        by = actor_name(body.get("by"), "")
        actor = f"{by} ({peer})" if by else f"control:{peer}"
        log.info("control command %s %s from %s", name, json.dumps(validated, ensure_ascii=False)[:200], actor)
        return self.device.command(name, validated, actor=actor)


def _linger(client: socket.socket, seconds: float = 1.0) -> None:
    """Half-close and swallow what the client still sends, briefly: closing a socket with unread
    input resets it, and the client would lose the error that explains why."""
    deadline = time.monotonic() + seconds
    with contextlib.suppress(OSError):
        client.shutdown(socket.SHUT_WR)
        while (left := deadline - time.monotonic()) > 0:
            client.settimeout(left)
            if not client.recv(65536):
                return


def _remove_stale(path: Path) -> None:
    """Unlink a socket nobody answers on (a killed service); refuse to take over a live one."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket; not replacing it")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            log.info("removing stale control socket %s", path)
            path.unlink(missing_ok=True)
            return
        except OSError:
            pass
    raise OSError(errno.EADDRINUSE, f"another process is serving {path}; not taking it over")


def _parse(line: bytes) -> dict[str, Any]:
    body = parse_object(line, "request", '{"id": 1, "cmd": "status"}')
    stray = sorted(str(key)[:32] for key in set(body) - _KEYS)
    if stray:
        raise Refused(f"unknown key(s) {', '.join(stray)}; allowed: {', '.join(sorted(_KEYS))}")
    return body


def _response(request_id: str | int | None, *, result: Any = None, error: str | None = None) -> dict[str, Any]:
    return {"id": request_id, "ok": error is None, "error": error, "result": result if error is None else None}


def _peer(client: socket.socket) -> str:
    try:
        pid, uid, _gid = struct.unpack("3i", client.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    except (OSError, struct.error):
        return "unknown peer"
    return f"pid {pid} uid {uid}"
