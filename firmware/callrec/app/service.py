"""Wiring: the same pipeline for the Pi and for the simulator, built from the configuration.

`Service` opens the data directory (journal, index), recovers what a crash left, loads the
announcement, opens every PCM (a clear start-up error if one cannot be opened), and starts the
recorder, the core, the players, the capture threads and the line source, in that order, so that
nothing produces input before its consumer runs. What differs between a Pi and a simulation is only
the `Backend`: the hardware behind the line port and the audio port, and the clocks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callrec.app import sdnotify
from callrec.app.device import ServiceDevice
from callrec.app.offload import make_uploader, remote_deleter
from callrec.app.stats import StatsProbe
from callrec.archive import Uploader
from callrec.audio import (
    AudioBackend,
    AudioDeviceError,
    CaptureGroup,
    ChannelMissing,
    Clock,
    Handover,
    PcmSpec,
    PlaybackGroup,
    Sound,
    SoundError,
    load_announcement,
    native_channels,
)
from callrec.clock import ClockSource, detect_clock
from callrec.config import Config
from callrec.core import AUDIO_BATCH_PERIODS, Core, Player
from callrec.errors import CallrecError
from callrec.events import AlarmBoard, Event, EventBus, LineBoard, Listener
from callrec.evidence import DeviceKeyError, Evidence, HeadWatcher, journal_witness
from callrec.line import LineSource
from callrec.privacy import Keeper, Recipients
from callrec.recording import Archived, Reconciled, Recorder, recover_all
from callrec.store import CallIndex, DataDirBusy, DataLock, Journal, StoreDamaged, move_aside

log = logging.getLogger(__name__)

ARCHIVE_DRAIN_S = 10.0   # at stop, the uploader ships what is pending for at most this long


class StartupError(CallrecError, RuntimeError):
    """The service cannot start as configured; the message says what to fix."""


@dataclass
class Backend:
    """What differs between a Pi and a simulation: the hardware behind the two ports, the clocks."""

    line_source: LineSource
    audio: AudioBackend
    capture_clock: Callable[[PcmSpec], Clock]          # frames read -> core time of the last of them
    playback_clock: Callable[[PcmSpec], Callable[[], float]]   # core time a sample written now sounds
    wall_of: Callable[[float], float]
    core_clock: Callable[[], float] | None = None      # hardware: the core wakes itself for timed decisions
    capture_batch: int = 5                              # periods handed to the core at once
    handover: Callable[[PcmSpec], Handover | None] = lambda spec: None   # earlier hand-overs (simulation)
    queue_size: int = 0
    finite: bool = False                               # the sources end (a scenario): so does the service
    listeners: list[Listener] = field(default_factory=list)   # the backend follows the event stream
    clock_status: Callable[[], dict[str, Any] | None] | None = None   # the clock port's verdict, as a dict


def clock_report(source: ClockSource) -> Callable[[], dict[str, Any] | None]:
    """The clock port's reading as the stats and the selftest show it (None: cannot tell)."""
    def read() -> dict[str, Any] | None:
        status = source.status()
        if not status.known:
            return None
        return {"synchronised": status.synchronised, "source": status.source, "offset_s": status.offset_s,
                "max_error_s": status.max_error_s}
    return read


def hardware_backend(line_source: LineSource) -> Backend:
    from callrec.audio import AlsaBackend

    sdnotify.claim_environment()   # before the first child (detect_clock runs chronyc): ours alone
    return Backend(
        line_source=line_source,
        audio=AlsaBackend(),
        capture_clock=lambda spec: (lambda frames: time.monotonic()),
        playback_clock=lambda spec: time.monotonic,
        core_clock=time.monotonic,
        # Read the wall clock at each use: a Pi has no RTC and NTP may set the clock after start.
        wall_of=lambda t: time.time() - (time.monotonic() - t),
        clock_status=clock_report(detect_clock()),
    )


@dataclass
class Store:
    """The data directory's journal and index, opened (and healed) for writing."""

    journal: Journal
    index: CallIndex
    problems: list[tuple[str, str]]   # (alarm id, message): what healing did, raised once the bus runs

    def close(self) -> None:
        self.index.close()
        self.journal.close()


def open_store(data_dir: Path) -> Store:
    """Open the journal and the index for writing; a damaged one is moved aside and replaced.

    A read-only or unusable data directory is a StartupError: the service cannot record there.
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StartupError(f"storage.data_dir: cannot use {data_dir}: {error.strerror or error}") from None
    if not os.access(data_dir, os.W_OK):
        raise StartupError(f"storage.data_dir: {data_dir} is not writable (a read-only disk, or owned by another "
                           "user); recordings cannot be kept there")
    problems: list[tuple[str, str]] = []
    try:
        journal = _open_healed(data_dir / "journal.sqlite", Journal, problems, "journal.damaged",
                               "the event journal", "a new journal continues the seq numbers after the last "
                               "one reserved")
        try:
            index = _open_healed(data_dir / "index.sqlite", CallIndex, problems, "index.damaged", "the call index",
                                 "the index is rebuilt from the recordings' sidecars")
        except BaseException:
            journal.close()
            raise
    except sqlite3.Error as error:
        raise StartupError(f"storage.data_dir: cannot open the store in {data_dir}: {error}") from None
    except OSError as error:
        raise StartupError(f"storage.data_dir: cannot use {data_dir}: {error.strerror or error}") from None
    return Store(journal, index, problems)


def _open_healed(path: Path, kind: Any, problems: list[tuple[str, str]], alarm: str, what: str, then: str) -> Any:
    """Open for writing: damaged, moved aside and replaced; not openable now (a full disk), opened
    lazily so the service still starts and records as soon as the disk allows."""
    try:
        store = kind(path, check=True, lazy=True)
    except StoreDamaged as damage:
        moved = move_aside(path)
        problems.append((alarm, f"{what} {path} was damaged ({damage.reason}); it was moved aside to "
                                f"{moved.name} and {then}"))
        store = kind(path, lazy=True)
    if store.unavailable is not None:
        problems.append((f"{alarm.split('.')[0]}.unavailable",
                         f"{what} {path} cannot be opened ({store.unavailable}); the service records and "
                         "keeps its events in memory until it can"))
    return store


def channel_problems(config: Config, kind: str, device: str, available: int) -> list[str]:
    """Every line whose `kind` channel is not on `device` (a card with `available` channels), as
    configuration errors naming the key path."""
    problems = []
    for index, line in enumerate(config.lines):
        pcm, channel = getattr(line, f"{kind}_pcm"), getattr(line, f"{kind}_channel")
        if pcm == device and channel >= available:
            problems.append(f"lines[{index}].{kind}_channel: channel {channel} does not exist on {device!r}, "
                            f"which has {available} channel(s) (0-{available - 1})")
    return problems


def card_problems(config: Config) -> list[str]:
    """Channels that the sound cards of this machine do not have (`check-config`): each card is
    asked once; one that is absent or busy (the service has it open) cannot be, and is skipped."""
    problems: list[str] = []
    for kind in ("capture", "playback"):
        for device in dict.fromkeys(getattr(line, f"{kind}_pcm") for line in config.lines):
            available = native_channels(kind, device)
            if available is not None:
                problems += channel_problems(config, kind, device, available)
    return problems


def config_problems(config: Config) -> list[str]:
    """What `check-config` finds past the file's own validation: the announcement cannot be loaded,
    a channel the sound card lacks. One list for `check-config` and the console's `config set`."""
    problems = card_problems(config)
    try:
        load_sound(config)
    except StartupError as error:
        problems.insert(0, str(error))
    return problems


def take_data_lock(data_dir: Path) -> DataLock:
    """This process owns the data directory from now on, or StartupError saying who does."""
    lock = DataLock(data_dir)
    try:
        lock.acquire()
    except (DataDirBusy, OSError) as error:
        raise StartupError(f"storage.data_dir: {error}") from None
    return lock


def load_sound(config: Config) -> Sound | None:
    if not config.announcement.enabled:
        return None
    path = config.announcement_file()
    try:
        return load_announcement(path, config.audio.sample_rate, config.announcement.gain_db)
    except SoundError as error:
        raise StartupError(f"announcement.file: {error}") from None


class Service:
    def __init__(self, config: Config, backend: Backend, listeners: list[Listener] | None = None, *,
                 lock: DataLock | None = None) -> None:
        """`lock`: the data directory's lock when the caller took it already (the simulator takes
        it before it prepares anything, so a refused second run touches nothing)."""
        self.config = config
        self.backend = backend
        self.listeners = listeners or []
        self._given_lock = lock
        self.journal: Journal | None = None
        self.index: CallIndex | None = None
        self.bus: EventBus | None = None
        self.recorder: Recorder | None = None
        self.core: Core | None = None
        self.captures: list[CaptureGroup] = []
        self.players: list[PlaybackGroup] = []
        self.extras: list[Any] = []
        self._lock: DataLock | None = None   # front ends (MQTT, console) stopped before the core
        self.reconciled = Reconciled()
        self.device: ServiceDevice | None = None   # what front ends may ask (after start)
        self.stats: StatsProbe | None = None
        self.evidence: Evidence | None = None
        self.keeper: Keeper | None = None
        self.uploader: Uploader | None = None
        self.heads: HeadWatcher | None = None   # journals the ledgers' heads as they move

    def start(self) -> None:
        config = self.config
        sound = load_sound(config)
        self._lock = self._given_lock or take_data_lock(config.storage.data_dir)
        try:
            store = open_store(config.storage.data_dir)
        except StartupError:
            self._lock.release()
            raise
        self.journal, self.index = store.journal, store.index
        self.bus = EventBus(self.journal)
        # The boards and the stats probe follow the event stream from its first event: the front
        # ends read them (through `device`), never the parts that made the events.
        self.lines_board, self.alarms_board = LineBoard(), AlarmBoard()
        try:
            self.uploader = make_uploader(config, self.index, self.bus, lambda news: self._finisher_post(news))
        except (sqlite3.Error, OSError) as error:   # a full disk must not keep calls from being recorded
            log.error("the archive queue cannot be opened (%s): no offload until the service restarts", error)
            store.problems.append(("archive.queue", f"the archive queue cannot be opened ({error}); recordings are "
                                                    "kept locally and offloaded after a restart"))
        self.stats = StatsProbe(config.storage.data_dir, lambda: sum(group.overruns for group in self.captures),
                                purpose=config.privacy.purpose, encrypted=config.privacy.encrypted,
                                backlog=self.uploader.backlog if self.uploader is not None else None)
        listeners: list[Listener] = [self.lines_board, self.alarms_board, self.stats, *self.listeners,
                                     *self.backend.listeners, *([self.uploader] if self.uploader else [])]
        for listener in listeners:
            self.bus.subscribe(listener)
        try:
            evidence = Evidence.open(config.storage.data_dir)
        except (OSError, DeviceKeyError) as error:   # a full disk must not keep calls from being recorded
            log.error("the device key cannot be made or read (%s): chain entries are unsigned until it can", error)
            evidence = Evidence.unsigned(config.storage.data_dir)
            store.problems.append(("evidence.key", f"the device signing key cannot be made or read ({error}); "
                                                   "calls are chained but unsigned until the service restarts "
                                                   "with it"))
        self.evidence = evidence
        evidence.note_config(config.model_dump_json(), "service start", "device:service")
        recipients = Recipients.parse(config.privacy.recipient) if config.privacy.encrypted else None
        bus = self.bus
        self.keeper = Keeper(config.storage.data_dir, self.index, evidence.chain, evidence.audit, config.retention,
                             self.bus, keep_local_days=config.archive.keep_local_days if self.uploader else None,
                             remote_delete=remote_deleter(self.uploader)
                             if self.uploader is not None and config.archive.apply_retention else None,
                             witness=lambda: journal_witness(bus.journal))
        self.recorder = Recorder(config.storage.data_dir, config.storage.format, config.audio.sample_rate,
                                 self.index, self.bus, config.storage.sync_interval_s,
                                 queue_size=self.backend.queue_size * 8,
                                 batch_s=AUDIO_BATCH_PERIODS * config.audio.period_ms / 1000,
                                 report=lambda item: self._core_post(item),
                                 chain=evidence.chain, recipients=recipients, keeper=self.keeper)
        period = config.audio.sample_rate * config.audio.period_ms // 1000
        capture_pcms: dict[str, dict[int, int]] = {}
        playback_pcms: dict[str, dict[int, int]] = {}
        for line in config.lines:
            capture_pcms.setdefault(line.capture_pcm, {})[line.id] = line.capture_channel
            playback_pcms.setdefault(line.playback_pcm, {})[line.id] = line.playback_channel
        core_players: dict[int, Player] = {}
        self.core = core = Core(
            config, self.bus, self.recorder, core_players, self.backend.line_source.set_led,
            self.backend.wall_of, sound,
            expected_captures=len(capture_pcms) if self.backend.finite else None,
            queue_size=self.backend.queue_size,
            clock=self.backend.core_clock,
            clock_status=self.backend.clock_status,
        )
        self.device = ServiceDevice(self.lines_board, self.alarms_board, self.stats, core, evidence.audit,
                                    config.privacy.purpose, config=config, clock=self.backend.clock_status)
        # After the core exists, so alarms raised by healing and recovery are among its active alarms.
        for alarm_id, message in store.problems:
            self.bus.emit(Event("alarm.raised", None, None, time.time(),
                                {"id": alarm_id, "kind": "storage", "message": message}))
        self.reconciled = recover_all(config.storage.data_dir, config.storage.format, self.index, self.bus,
                                      rate=config.audio.sample_rate, preroll_s=config.audio.preroll_seconds,
                                      chain=evidence.chain)
        if self.reconciled.recovered:
            log.info("recovered %d interrupted recording(s)", len(self.reconciled.recovered))
        try:
            rate = config.audio.sample_rate
            for pcm, channels in playback_pcms.items():
                spec = PcmSpec(pcm, "playback", max(channels.values()) + 1, rate, period)
                player = PlaybackGroup(self.backend.audio.sink(spec), channels, core.post,
                                       self.backend.playback_clock(spec))
                player.open()
                self.players.append(player)
                for line_id in channels:
                    core_players[line_id] = player
            for pcm, channels in capture_pcms.items():
                spec = PcmSpec(pcm, "capture", max(channels.values()) + 1, rate, period)
                capture = CaptureGroup(self.backend.audio.source(spec), channels, core.post,
                                       self.backend.capture_clock(spec), backoff_s=config.audio.reopen_backoff_s,
                                       batch_periods=self.backend.capture_batch,
                                       handover=self.backend.handover(spec))
                capture.open()
                self.captures.append(capture)
        except ChannelMissing as error:
            self._close_audio()
            self._lock.release()
            raise StartupError("\n  ".join(channel_problems(config, error.kind, error.device, error.available))
                               or str(error)) from None
        except AudioDeviceError as error:
            self._close_audio()
            self._lock.release()
            raise StartupError(str(error)) from None
        if self.uploader is not None:
            self.uploader.catch_up(iter(self.index))   # what was saved while the uploader was off
            self.uploader.start()
        self.heads = HeadWatcher(config.storage.data_dir, self.bus)
        self.heads.start()
        self.recorder.start()
        core.start()
        for player in self.players:
            player.start()
        try:
            self.backend.line_source.start(core.post)
        except Exception as error:
            self.stop()
            raise StartupError(f"line inputs: {error}") from None
        for capture in self.captures:
            capture.start()

    def _finisher_post(self, news: Archived) -> None:
        """The uploader's news for the index: to the finisher while it runs (the index's writer);
        once it has stopped (the uploader drains at stop), applied here, where nothing else writes."""
        if self.recorder is None:
            return
        if self.recorder.finisher.alive:
            self.recorder.finisher.submit(news)
        else:
            self.recorder.finisher.archived(news)

    def _core_post(self, item: object) -> None:
        if self.core is not None:
            self.core.post(item)

    def wait_settled(self) -> None:
        """Every input so far decided on, and what the recorder answered (a call's recording opened
        or failed) decided on too: the simulator's way to read no further than a real line would be
        heard before the device acts."""
        assert self.core is not None and self.recorder is not None
        self.core.wait_caught_up()
        self.recorder.wait_idle(finished=False)
        self.core.wait_caught_up()
        for player in self.players:   # what the core asked to play has reached the line
            player.wait_started()

    def player_idle(self, pcm: str) -> bool:
        """The player of this playback PCM has nothing to play."""
        return all(player.idle for player in self.players if player.pcm == pcm)

    def healthy(self, stale_s: float = 2.0) -> bool:
        """For the watchdog: the core loop turns and every capture thread shows signs of life.

        A capture waiting for a lost sound card keeps trying to reopen it, which counts as life:
        that is an alarm, not a reason to restart (a restart could not open the card either, and
        would turn an alarm into a crash loop). A capture stuck inside a read shows none.
        """
        if self.core is None:
            return False
        now = time.monotonic()
        if now - self.core.last_loop_monotonic >= stale_s:
            return False
        if self.recorder is not None and not self.recorder.alive:
            return False
        return all(now - capture.last_activity_monotonic < stale_s + capture.backoff_s for capture in self.captures)

    def stop(self) -> None:
        """Stop inputs, end open calls, let the recorder finish, tell the front ends, close the store.

        Front ends (MQTT) stop after the recorder, so the last calls' events go out before `offline`.
        """
        self.backend.line_source.stop()
        for capture in self.captures:
            capture.stop()
        if self.core is not None:
            self.core.stop()
        for player in self.players:
            player.stop()
        if self.recorder is not None:
            self.recorder.stop()
        if self.heads is not None:
            self.heads.stop()   # the last heads journaled (and so published) before the front ends go
        if self.uploader is not None:
            self.uploader.stop(drain_s=ARCHIVE_DRAIN_S)
            self.uploader.queue.close()
        for extra in reversed(self.extras):
            try:
                if hasattr(extra, "drain"):
                    extra.drain()
                extra.stop()
            except Exception:
                log.exception("stopping %s failed", type(extra).__name__)
        self._close_audio()
        if self.stats is not None:
            self.stats.close()
        if self.index is not None:
            self.index.close()
        if self.journal is not None:
            self.journal.close()
        if self._lock is not None:
            self._lock.release()

    def _close_audio(self) -> None:
        groups: list[CaptureGroup | PlaybackGroup] = [*self.captures, *self.players]
        for group in groups:
            with contextlib.suppress(Exception):
                group.close()
