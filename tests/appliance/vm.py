"""The appliance booted under QEMU, driven from the host: power, the console UART, the test's hand.

`Appliance` boots image-build's VM image with run-vm.sh (the VM's stand-in for the Pi's firmware:
kernel, initramfs and cmdline.txt come from the image's boot partition at every power-on) and
QEMU's `-no-reboot`, so a reboot inside the guest ends the QEMU process and `boot()` powers on
again, as the Pi's firmware would read the boot partition again. Three wires lead out:
- ttyS0, the appliance's console UART (callrec-console@ttyS0), on a unix socket: `Console`;
- ttyS1, the kernel's and systemd's messages, into `boot-N.log`;
- the `callrec.hand` virtio-serial port to the test's hand inside the guest (test image only):
  `hand()` / `sh()` — gpio-sim pulls, the line simulator's feed, files an installer would read.
The guest reaches the host's broker as 10.0.2.100:1883 and its NTP as 10.0.2.2. The broker is
forwarded with QEMU's guestfwd `cmd:` form, a socat per guest connection: the chardev form
(`-tcp:127.0.0.1:PORT`) opens one host connection when QEMU starts and hands every guest connection
to it, so the first reconnect (a CONNACK slow under load, `systemctl restart`) lands a second
CONNECT on the old stream, the broker closes it, and MQTT stays down for the rest of that boot.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RUN_VM = REPO / "image-build" / "vm" / "run-vm.sh"
PROMPT = "callrec> "
PASSPHRASE = "callrec-vm-test"   # set by image-build/vm/test-hand/apply.sh, test image only


class ApplianceError(AssertionError):
    pass


class Console:
    """The technician's end of the console UART: type lines, read what the console writes back."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(str(path))
        self.sock.settimeout(0.2)
        self.seen = ""

    def type(self, data: str) -> None:
        self.sock.sendall(data.encode())

    def read_until(self, marker: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while marker not in self.seen:
            if time.monotonic() > deadline:
                raise ApplianceError(f"no {marker!r} from the console within {timeout} s; got {self.seen[-2000:]!r}")
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise ApplianceError(f"the console UART closed; got {self.seen[-2000:]!r}")
            self.seen += chunk.decode("utf-8", "replace")
        head, _, self.seen = self.seen.partition(marker)
        return head + marker

    def run(self, command: str, timeout: float = 60.0) -> str:
        """Type a command and Enter; the console's answer without the echo and the prompt."""
        self.type(command + "\r")
        self.read_until(command + "\r\n", timeout)
        return self.read_until(PROMPT, timeout)[: -len(PROMPT)]

    def close(self) -> None:
        self.sock.close()


class Appliance:
    def __init__(self, image: Path, work: Path, broker_port: int | None = None) -> None:
        self.image = image
        self.work = work
        self.broker_port = broker_port
        self.boots = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._hand: socket.socket | None = None
        self._hand_buffer = b""
        self._next_id = 0
        self.powered_on_at = 0.0

    # ---- power ------------------------------------------------------------------------------------

    def boot(self) -> None:
        """Power on (the previous QEMU must have ended: reboot, poweroff or a cut)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.boots += 1
        for name in ("console.sock", "hand.sock"):
            (self.work / name).unlink(missing_ok=True)
        env = dict(os.environ)
        if self.broker_port is not None:
            env["CALLREC_VM_NETDEV"] = (f"guestfwd=tcp:10.0.2.100:1883-cmd:socat - "
                                        f"TCP:127.0.0.1:{self.broker_port}")
        self.log_path = self.work / f"boot-{self.boots}.log"
        qemu_log = open(self.work / f"qemu-{self.boots}.log", "wb")   # noqa: SIM115 (lives with the process)
        self.powered_on_at = time.monotonic()
        self.proc = subprocess.Popen(
            [str(RUN_VM), str(self.image), "-no-reboot",
             "-serial", f"unix:{self.work / 'console.sock'},server=on,wait=off",
             "-serial", f"file:{self.log_path}",
             "-device", "virtio-serial-pci",
             "-chardev", f"socket,id=hand,path={self.work / 'hand.sock'},server=on,wait=off",
             "-device", "virtserialport,chardev=hand,name=callrec.hand"],
            stdout=qemu_log, stderr=qemu_log, env=env, start_new_session=True)
        qemu_log.close()
        self._hand = None
        self._hand_buffer = b""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def power_cut(self) -> None:
        """Pull the plug: QEMU killed, nothing in the guest gets to shut down or flush."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._hand = None

    def wait_off(self, timeout: float = 300) -> None:
        """Wait for QEMU to end by itself (a reboot or poweroff inside the guest, with -no-reboot)."""
        assert self.proc is not None
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ApplianceError(f"the VM did not power off within {timeout} s; boot log: {self.boot_log()[-3000:]}") \
                from None
        self._hand = None

    def shutdown(self) -> None:
        if self.running():
            try:
                self.sh("systemctl poweroff", check=False, timeout=10)
                self.wait_off(120)
            except (ApplianceError, OSError):
                self.power_cut()

    def boot_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    # ---- the test's hand ----------------------------------------------------------------------------

    def wait_hand(self, timeout: float = 600) -> float:
        """Seconds from power-on until the hand inside the guest answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise ApplianceError(f"the VM stopped while booting; boot log: {self.boot_log()[-3000:]}")
            try:
                self.hand({"sh": "true"}, timeout=5)
                return time.monotonic() - self.powered_on_at
            except (OSError, ApplianceError):
                self._hand = None
                time.sleep(1)
        raise ApplianceError(f"the hand did not answer within {timeout} s; boot log: {self.boot_log()[-3000:]}")

    def hand(self, request: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        if self._hand is None:
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(self.work / "hand.sock"))
            self._hand, self._hand_buffer = sock, b""
        self._next_id += 1
        request = {**request, "id": self._next_id}
        if "sh" in request:
            request.setdefault("timeout", timeout)
        self._hand.settimeout(timeout)   # a big file goes as fast as the guest reads it
        self._hand.sendall(json.dumps(request).encode() + b"\n")
        deadline = time.monotonic() + timeout + 5
        while True:
            while b"\n" in self._hand_buffer:
                line, self._hand_buffer = self._hand_buffer.split(b"\n", 1)
                answer: dict[str, Any] = json.loads(line)
                if answer.get("id") == self._next_id:
                    return answer
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._hand = None
                raise ApplianceError(f"the hand did not answer {request!r} within {timeout} s")
            self._hand.settimeout(min(remaining, 1.0))
            try:
                chunk = self._hand.recv(1 << 20)
            except TimeoutError:
                continue
            if not chunk:
                self._hand = None
                raise ApplianceError("the hand's port closed")
            self._hand_buffer += chunk

    def sh(self, command: str, *, check: bool = True, timeout: float = 120) -> str:
        answer = self.hand({"sh": command}, timeout=timeout)
        if check and answer["rc"] != 0:
            raise ApplianceError(f"`{command}` exited {answer['rc']}: {answer['err'][-2000:]} {answer['out'][-2000:]}")
        return str(answer["out"])

    def get(self, path: str) -> bytes:
        answer = self.hand({"get": path})
        if answer["rc"] != 0:
            raise ApplianceError(f"cannot read {path} in the VM: {answer['err']}")
        return base64.b64decode(answer["out"])

    def put(self, path: str, data: bytes) -> None:
        answer = self.hand({"put": path, "data": base64.b64encode(data).decode()})
        if answer["rc"] != 0:
            raise ApplianceError(f"cannot write {path} in the VM: {answer['err']}")

    def pull(self, pin: int, pull: str) -> float:
        """Move a gpio-sim input ('pull-up' idle, 'pull-down' active); the guest's monotonic time of it."""
        answer = self.hand({"pull": [pin, pull]})
        if answer["rc"] != 0:
            raise ApplianceError(f"cannot pull GPIO{pin}: {answer['err']}")
        return float(answer["t"])

    def guest_monotonic(self) -> float:
        return float(self.hand({"sh": "true"})["t"])

    def wait_active(self, unit: str = "callrec", timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.sh(f"systemctl is-active {unit}", check=False).strip()
            if state == "active":
                return
            time.sleep(1)
        raise ApplianceError(f"{unit} is {state!r} after {timeout} s: "
                             + self.sh(f"journalctl -b -u {unit} --no-pager -n 40", check=False))

    def console(self) -> Console:
        return Console(self.work / "console.sock")
