"""The simulator: a scenario drives the real pipeline through real alsa-lib and a simulated line.

Each scenario line gets its own pair of ALSA `file`-plugin PCMs: capture reads the line's audio
from a raw infile, playback writes what the device played to a WAV. The simulated GPIO line fires
the scenario's hook and ring edges from inside the capture thread, at the exact sample of their
`at`, so the recording can be compared sample for sample with the input. The simulated wire mixes
what the device played into what the line carries, as a real line would.

Without `--realtime` the `null` slave reads unpaced (an hour in seconds); the core's bounded queue
and a lockstep gate keep all lines on one timeline. With `--realtime` a private PulseAudio with null
sinks supplies a real clock behind the same PCMs.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import soxr

from callrec.app import Backend, channel_problems
from callrec.audio.playback import PlaybackStarted
from callrec.audio.sound import SoundError, to_int16
from callrec.config import Config, ConfigError, report
from callrec.line import SimulatedLine
from callrec.sim.scenario import Scenario, ScenarioError, ScenarioEvent, ScenarioLine, load_scenario

__all__ = ["Scenario", "ScenarioError", "ScenarioEvent", "ScenarioLine", "Simulation", "load_scenario", "prepare"]

log = logging.getLogger(__name__)

TAIL_S = 2.0     # audio after the last event, so the hang-up decision (flash window) can be taken
URGENT_AFTER_EDGE_S = 0.15   # after an edge, read in step with the core for this long (debounce and act)
LEAD_S = 0.4                 # otherwise unpaced capture stays at most this far ahead of the core


# ---- the simulated line, wire and pacing ---------------------------------------------------------


class Lockstep:
    """Keeps unpaced capture threads within a few periods of each other: one timeline for events."""

    def __init__(self, cards: list[str], slack_frames: int) -> None:
        self._positions: dict[str, int] = dict.fromkeys(cards, 0)
        self.slack = slack_frames
        self._cond = threading.Condition()

    def wait_turn(self, card: str, frame: int) -> None:
        if len(self._positions) < 2:
            return
        with self._cond:
            self._positions[card] = frame
            self._cond.notify_all()
            while True:
                others = [pos for other, pos in self._positions.items() if other != card]
                if not others or frame <= min(others) + self.slack:
                    return
                self._cond.wait(timeout=0.5)

    def done(self, card: str) -> None:
        with self._cond:
            self._positions.pop(card, None)
            self._cond.notify_all()


class SimLineTap:
    """One line's capture tap and wire: fires its edges on time and mixes what the device plays."""

    def __init__(self, scenario: ScenarioLine, rate: int, max_frames: int, source: SimulatedLine,
                 lockstep: Lockstep, card: str, post: Any, caught_up: Any, awaiting: Any) -> None:
        self.line = scenario.line
        self._card = card   # the simulated PCM (card) this line is read with: its lockstep key
        self.rate = rate
        self.max_frames = max_frames
        self._events = list(scenario.events)
        self._source = source
        self._lockstep = lockstep
        self._post = post
        self._lock = threading.Lock()
        self._pending: list[list[Any]] = []   # [samples, position, kind, started]
        self._sound_due = threading.Event()
        self._sound_due.set()
        self._gated_at = -(10**9)
        self._read_t = 0.0
        self._urgent_until = -1.0
        self._caught_up = caught_up
        self._awaiting = awaiting
        self._awaiting_answer = False
        self._synced_at = 0
        self._lead_frames = int(LEAD_S * rate)
        self.edge_monotonic: dict[float, float] = {}

    def before_read(self, frame: int) -> None:
        if frame - self._gated_at >= self._lockstep.slack // 2:
            self._gated_at = frame
            self._lockstep.wait_turn(self._card, frame)
        # Read no further ahead of the core's decisions than a real line would be heard before the
        # core acts on it: just after an edge not at all, and while the core waits for the far end
        # to answer by at most LEAD_S, so the announcement it then starts lands where it would.
        # Otherwise reading runs free (the fast simulation's throughput).
        self._awaiting_answer = self._awaiting(self.line)
        if self._read_t < self._urgent_until:
            self._caught_up()
        elif self._awaiting_answer and frame - self._synced_at >= self._lead_frames:
            self._synced_at = frame
            self._caught_up()
        # A sound the core asked for is on its way from the player thread: a real wire would carry
        # it now, so do not read ahead of it (unpaced reads would otherwise race the player).
        if not self._sound_due.is_set():
            self._sound_due.wait(timeout=1.0)

    def expect(self, line: int) -> None:
        self._sound_due.clear()

    def inject(self, line: int, samples: np.ndarray, kind: str) -> None:
        with self._lock:
            self._pending = [[samples, 0, kind, False]]   # a new sound replaces the old, as the player does
        self._sound_due.set()

    def urgent(self) -> bool:
        """Hand each read to the core at once (no batching): just after an edge, and while the
        core waits for a far end to answer (a voice or the ringback's end decides it)."""
        return self._read_t < self._urgent_until or self._awaiting_answer

    def due(self, t_end: float) -> bool:
        """An edge falls inside the read ending at `t_end`: audio before it must reach the core first."""
        return bool(self._events) and self._events[0].at < t_end

    def on_period(self, line: int, frame_start: int, samples: np.ndarray) -> np.ndarray:
        t_end = (frame_start + len(samples)) / self.rate
        self._read_t = t_end
        while self._events and self._events[0].at < t_end:
            event = self._events.pop(0)
            self._urgent_until = event.at + URGENT_AFTER_EDGE_S
            # when the edge happened on the paced line: the read ends (t_end - at) after it
            self.edge_monotonic[event.at] = time.monotonic() - (t_end - event.at)
            self._source.drive(self.line, event.signal, event.active, event.at)  # type: ignore[arg-type]
        if not self._pending:  # read without the lock: an injection seen a period late starts then
            return self._finish_period(frame_start, samples)
        with self._lock:
            if self._pending:
                mixed = samples.astype(np.int32)
                for item in self._pending:
                    sound, pos, kind, started = item
                    if not started:
                        item[3] = True
                        self._post(PlaybackStarted(self.line, kind, frame_start / self.rate, time.monotonic()))
                    chunk = sound[pos : pos + len(samples)]
                    mixed[: len(chunk)] += chunk
                    item[1] = pos + len(chunk)
                self._pending = [item for item in self._pending if item[1] < len(item[0])]
                samples = np.clip(mixed, -32768, 32767).astype(np.int16)
        return self._finish_period(frame_start, samples)

    def _finish_period(self, frame_start: int, samples: np.ndarray) -> np.ndarray:
        if frame_start + len(samples) >= self.max_frames:
            self._lockstep.done(self._card)
        return samples


class SimPcmTap:
    """The capture tap of one simulated PCM: the taps of the lines it carries (a stereo card, two).

    It also plays the card's faults: while one lasts the card is "unplugged" (the capture reports
    a device failure and delivers nothing), while the line itself goes on: its time runs, its edges
    fire, and its audio in the meantime is never heard, as on a real line.
    """

    def __init__(self, taps: list[SimLineTap], gone: list[tuple[int, int]] | None = None,
                 clock: WallClock | None = None) -> None:
        self._taps = {tap.line: tap for tap in taps}
        self.max_frames = max(tap.max_frames for tap in taps)
        self._gone = sorted(gone or [])
        self._clock = clock

    def before_read(self, frame: int) -> None:
        for tap in self._taps.values():
            tap.before_read(frame)

    def gone(self, frame: int) -> bool:
        """The simulated card is unplugged at this frame of the line."""
        return any(start <= frame < end for start, end in self._gone)

    def read_done(self, frame_end: int, rate: int) -> None:
        if self._clock is not None:
            self._clock.mark(frame_end / rate)

    def due(self, t_end: float) -> bool:
        return any(tap.due(t_end) for tap in self._taps.values())

    def urgent(self) -> bool:
        return any(tap.urgent() for tap in self._taps.values())

    def on_period(self, line: int, frame_start: int, samples: np.ndarray) -> np.ndarray:
        return self._taps[line].on_period(line, frame_start, samples)


class WallClock:
    """The wall clock of the simulated appliance: labels for line times, as a Pi gives them.

    A label is the wall clock read now minus how long ago the moment was (service.hardware_backend
    does the same with the monotonic clock), so a step of the wall clock moves labels and never a
    duration. Paced, "now" is the real wall clock and line time 0 is when the card delivered its
    first period (PulseAudio takes about a second after the open: labels taken from the start of
    the program would run that much ahead of the line). Unpaced, the wall runs with line time.
    Scenario `clock_step` faults step it at a line time, by their `seconds`.
    """

    def __init__(self, paced: bool, steps: list[tuple[float, float]]) -> None:
        self._paced = paced
        self._steps = sorted(steps)
        self._mono0: float | None = None
        self._fallback = time.monotonic()
        self._start_wall = time.time()
        self._now_t = 0.0

    def mark(self, t_end: float) -> None:
        """A capture read up to line time `t_end`."""
        if self._mono0 is None:
            self._mono0 = time.monotonic() - t_end
        self._now_t = max(self._now_t, t_end)

    def wall_of(self, t: float) -> float:
        step = sum(seconds for at, seconds in self._steps if self._now_t >= at)
        if not self._paced:
            return self._start_wall + step + t
        mono0 = self._mono0 if self._mono0 is not None else self._fallback
        return time.time() + step - (time.monotonic() - (mono0 + t))


class SimWire:
    """Routes what a playback PCM plays to the tap of the line it was played on."""

    def __init__(self, taps: dict[int, SimLineTap]) -> None:
        self.taps = taps

    def expect(self, line: int) -> None:
        self.taps[line].expect(line)

    def inject(self, line: int, samples: np.ndarray, kind: str) -> None:
        self.taps[line].inject(line, samples, kind)


def convert_to_raw(source: Path, raw: Path, rate: int) -> int:
    """Stream any WAV into raw S16_LE mono at `rate` for the file plugin; returns frames written.

    Block by block (libsndfile in, soxr's streaming resampler), so an hour of line audio costs no
    more memory than a second of it.
    """
    try:
        info = soundfile.info(str(source))
        blocks = soundfile.blocks(str(source), blocksize=65536, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise SoundError(f"{source}: not a readable audio file ({error})") from None
    resampler = soxr.ResampleStream(info.samplerate, rate, 1, dtype="float32") if info.samplerate != rate else None
    written = 0
    with open(raw, "wb") as out:
        for block in blocks:
            mono = block.mean(axis=1)
            if resampler is not None:
                mono = resampler.resample_chunk(mono)
            out.write(to_int16(mono).astype("<i2").tobytes())
            written += len(mono)
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            out.write(to_int16(tail).astype("<i2").tobytes())
            written += len(tail)
    if written == 0:
        raise SoundError(f"{source}: the file holds no audio")
    return written


# ---- ALSA configuration for the simulation ------------------------------------------------------


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


# The simulated cards are stereo, like the USB card of the bill of materials (hw/bom.csv).
SIM_CARD_CHANNELS = 2


@dataclass
class Simulation:
    config: Config
    backend: Backend
    taps: dict[int, SimLineTap]
    source: SimulatedLine
    workdir: Path
    pulse: PulseServer | None
    owns_workdir: bool = True
    scratch: list[Path] = field(default_factory=list)

    def close(self) -> None:
        if self.pulse is not None:
            self.pulse.stop()
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _group_lines(config: Config, scenario: list[ScenarioLine], explicit_config: bool) -> list[list[ScenarioLine]]:
    """Scenario lines by the capture PCM they are configured on: lines that share a card in the
    configuration (a stereo card carries two) share one simulated PCM, channel for channel."""
    configured = {line.id: line for line in config.lines}
    groups: dict[str, list[ScenarioLine]] = {}
    for s in scenario:
        if s.line not in configured and explicit_config:
            raise ScenarioError(f"scenario line {s.line} is not among the configured lines "
                                f"{sorted(configured)}; add it to the configuration")
        key = configured[s.line].capture_pcm if s.line in configured else f"line {s.line}"
        groups.setdefault(key, []).append(s)
    return list(groups.values())


def _channel(config: Config, line: int) -> int:
    configured = {entry.id: entry for entry in config.lines}
    return configured[line].capture_channel if line in configured else 0


def _write_infile(workdir: Path, name: str, group: list[ScenarioLine], channels: dict[int, int], rate: int,
                  period: int, width: int) -> int:
    """The group's interleaved raw infile; returns the frames the simulation will read."""
    frames = 0
    mono: dict[int, Path] = {}
    for s in group:
        mono[s.line] = workdir / f"line{s.line}.mono.raw"
        try:
            audio_frames = convert_to_raw(s.audio, mono[s.line], rate)
        except SoundError as error:
            raise ScenarioError(f"scenario line {s.line}: {error}") from None
        last_event = s.events[-1].at if s.events else 0.0
        frames = max(frames, audio_frames, int((last_event + TAIL_S) * rate))
    frames = -(-frames // period) * period
    total = frames + 10 * period   # longer than what is read: the plugin never re-reads stale data
    block = 8000 * 60   # a minute at a time: an hour of line audio costs no more memory than that
    sources = {line: open(path, "rb") for line, path in mono.items()}  # noqa: SIM115 - closed below
    try:
        with open(workdir / f"{name}.raw", "wb") as out:
            for start in range(0, total, block):
                n = min(block, total - start)
                chunk = np.zeros((n, width), dtype="<i2")
                for line, source in sources.items():
                    part = np.frombuffer(source.read(2 * n), dtype="<i2")
                    chunk[: len(part), channels[line]] = part
                out.write(chunk.tobytes())
    finally:
        for source in sources.values():
            source.close()
    for path in mono.values():
        path.unlink()
    return frames


def prepare(config: Config, scenario: Scenario, *, realtime: bool, explicit_config: bool,
            post: Any, caught_up: Any, awaiting: Any = lambda line: False, workdir: Path | None = None) -> Simulation:
    """Write the line audio and the ALSA configuration, and build the simulation backend.

    Must run before the first PCM is opened in this process: alsa-lib reads its configuration once.
    `post` is the core's input, `caught_up` waits for the core to drain it, `awaiting(line)` says the
    core waits for a far end to answer on the line (all bound later, once the core exists).

    The scratch files (converted line audio, the simulated cards, PulseAudio's socket) go to
    `workdir`, by default a new temporary directory removed by `close()`: never into the data
    directory, whose space belongs to the recordings.
    """
    rate = config.audio.sample_rate
    period = rate * config.audio.period_ms // 1000
    _check_sim_channels(config, scenario)
    owns = workdir is None
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="callrec-sim-"))
    else:
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        return _prepare_in(config, scenario, realtime=realtime, explicit_config=explicit_config, post=post,
                           caught_up=caught_up, awaiting=awaiting, workdir=workdir, owns=owns,
                           rate=rate, period=period)
    except BaseException:
        if owns:
            shutil.rmtree(workdir, ignore_errors=True)
        raise


def _check_sim_channels(config: Config, scenario: Scenario) -> None:
    """The simulated cards are stereo: a line on a channel they lack is the configuration error a
    real stereo card would give at start (service.channel_problems)."""
    used = {s.line for s in scenario.lines}
    problems: list[str] = []
    for kind in ("capture", "playback"):
        for device in dict.fromkeys(getattr(line, f"{kind}_pcm") for line in config.lines if line.id in used):
            problems += channel_problems(config, kind, device, SIM_CARD_CHANNELS)
    if problems:
        raise ConfigError(report("<configuration>", "configuration", [
            *problems, f"(the simulated sound cards have {SIM_CARD_CHANNELS} channels, like the card of hw/bom.csv)"]))


def _prepare_in(config: Config, scenario: Scenario, *, realtime: bool, explicit_config: bool, post: Any,
                caught_up: Any, awaiting: Any, workdir: Path, owns: bool, rate: int, period: int) -> Simulation:
    groups = _group_lines(config, list(scenario.lines), explicit_config)
    configured = {line.id: line for line in config.lines}
    group_channels = [{s.line: _channel(config, s.line) for s in group} for group in groups]
    # Opened as wide as the lines on it need (plughw would do the same on a real card);
    # _check_sim_channels has made sure that is within the card's SIM_CARD_CHANNELS.
    widths = [max(channels.values()) + 1 for channels in group_channels]
    pulse = PulseServer(workdir, rate, [(f"card{k}", w) for k, w in enumerate(widths)]) if realtime else None
    source = SimulatedLine([s.line for s in scenario.lines])
    lockstep = Lockstep([f"card{k}" for k in range(len(groups))], slack_frames=100 * period)
    clock = WallClock(realtime, [(f.at, f.seconds) for f in scenario.faults if f.kind == "clock_step"])
    lines, asound = [], []
    taps: dict[int, SimLineTap] = {}
    pcm_taps: dict[str, SimPcmTap] = {}
    for k, (group, channels) in enumerate(zip(groups, group_channels, strict=True)):
        name = f"card{k}"
        frames = _write_infile(workdir, name, group, channels, rate, period, widths[k])
        capture_slave = pulse.slave(f"{name}_in.monitor") if pulse else '"null"'
        playback_slave = pulse.slave(f"{name}_out") if pulse else '"null"'
        asound.append(
            f'pcm.callrec_sim_in_{k} {{\n  type file\n  slave.pcm {capture_slave}\n'
            f'  file "/dev/null"\n  infile "{workdir / f"{name}.raw"}"\n  format "raw"\n}}\n'
            f'pcm.callrec_sim_out_{k} {{\n  type file\n  slave.pcm {playback_slave}\n'
            f'  file "{workdir / f"played_{name}.wav"}"\n  format "wav"\n  perm 0644\n}}\n'
        )
        for s in group:
            base = configured.get(s.line)
            fields = base.model_dump() if base is not None else {
                "id": s.line, "hook_gpio": 2 + 3 * s.line, "ring_gpio": 3 + 3 * s.line, "led_gpio": None,
            }
            fields.update(capture_pcm=f"callrec_sim_in_{k}", capture_channel=channels[s.line],
                          playback_pcm=f"callrec_sim_out_{k}", playback_channel=channels[s.line])
            lines.append(fields)
            taps[s.line] = SimLineTap(s, rate, frames, source, lockstep, name, post, caught_up, awaiting)
        gone = [(int(f.at * rate), int((f.at + f.seconds) * rate)) for f in scenario.faults
                if f.kind == "capture_gone" and (f.line is None or f.line in channels)]
        pcm_taps[f"callrec_sim_in_{k}"] = SimPcmTap([taps[s.line] for s in group], gone, clock)
    conf = workdir / "asound.conf"
    conf.write_text("".join(asound))
    os.environ["ALSA_CONFIG_PATH"] = f"/usr/share/alsa/alsa.conf:{conf}"
    sim_config = config.model_validate({**config.model_dump(), "lines": lines})
    backend = Backend(
        line_source=source,
        capture_clock=lambda rate_: (lambda frames: frames / rate_),
        playback_clock=time.monotonic,   # unused: the wire reports playback start
        wall_of=clock.wall_of,
        taps=dict(pcm_taps),
        wire=SimWire(taps),
        capture_batch=1 if realtime else 50,
        queue_size=0 if realtime else 16,
        simulated=True,
    )
    return Simulation(sim_config, backend, taps, source, workdir, pulse, owns_workdir=owns)
