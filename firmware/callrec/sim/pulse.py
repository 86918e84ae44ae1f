"""A private PulseAudio with null sinks: the real-time clock behind `callrec simulate --realtime`.

alsa-lib's `file` plugin reads the line audio; over a `null` slave it reads unpaced (an hour in
seconds), over a PulseAudio null sink's monitor at the sink's clock: a real-time line. The server
belongs to the simulation and dies with it, even by kill -9.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from callrec.sim.scenario import ScenarioError


def _die_with_parent() -> None:
    """In the PulseAudio child: end when the simulator dies, even by kill -9 (Linux prctl)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class PulseServer:
    """A private PulseAudio with null sinks: the real-time clock behind `--realtime`."""

    def __init__(self, workdir: Path, rate: int, cards: list[tuple[str, int]]) -> None:
        if shutil.which("pulseaudio") is None:
            raise ScenarioError("--realtime needs PulseAudio: apt-get install pulseaudio pulseaudio-utils")
        self.dir = workdir / "pulse"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "native"
        script = [f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.socket}"]
        for card, channels in cards:   # one pair of null sinks per simulated card, as wide as it
            for kind in ("in", "out"):
                script.append(f"load-module module-null-sink sink_name={card}_{kind} rate={rate} "
                              f"channels={channels} format=s16le")
        (self.dir / "sim.pa").write_text("\n".join(script) + "\n")
        env = dict(os.environ, HOME=str(workdir), XDG_RUNTIME_DIR=str(self.dir))
        self.proc = subprocess.Popen(
            ["pulseaudio", "-n", "-F", str(self.dir / "sim.pa"), "--daemonize=no", "--exit-idle-time=-1",
             "--disallow-exit", "--use-pid-file=no", "--system=false",
             f"--log-target=file:{self.dir / 'pa.log'}"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.socket.exists():
                try:
                    with socket.socket(socket.AF_UNIX) as probe:
                        probe.connect(str(self.socket))
                    return
                except OSError:
                    pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise ScenarioError(f"the private PulseAudio did not start; see {self.dir / 'pa.log'}")

    def slave(self, device: str) -> str:
        return f'{{ type pulse; server "unix:{self.socket}"; device "{device}" }}'

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
