"""The whole configuration: one TOML file, validated at start, every error naming its key path.

Every key has a default, so a file holds only what it changes (docs/callrec.example.toml documents
each). Region profiles fill the telephony figures; any of them can be overridden in `[telephony]`.
The models forbid unknown keys so a typo is an error, not a silently ignored setting.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeGuard

from pydantic import Field, ValidationError, field_validator, model_validator

from callrec.config.archive import ArchiveConfig
from callrec.config.console import ConsoleConfig
from callrec.config.health import HealthConfig
from callrec.config.mqtt import MqttSettings
from callrec.config.privacy import PrivacyConfig, RetentionConfig
from callrec.config.regions import PROFILES, RegionProfile, Tone
from callrec.config.toml import TomlModel, field_problems, report, toml_document
from callrec.errors import CallrecError

DEFAULT_CONFIG_PATH = Path("/etc/callrec/callrec.toml")
ASSETS = Path(__file__).parent.parent / "assets"


class ConfigError(CallrecError, ValueError):
    """The configuration is not usable; the message lists every problem with its key path."""




class LineConfig(TomlModel):
    """One phone line: its GPIO sense inputs, LED and sound-card channels.

    An ISDN BRI is two lines, one per B-channel (`kind = "isdn_bri"`, the same `dchannel`, `b_channel`
    1 and 2), so its two simultaneous calls are two calls with their own recordings; they have no
    hook or ring pins (the D-channel says everything)."""

    id: int = Field(ge=1, le=4, description="Line number, 1 to 4, as shown on the case and in events")
    name: str = Field("", description="Free label, e.g. 'Sales'")
    kind: Literal["analog", "isdn_bri"] = Field("analog", description="analog (hook/ring GPIO) or isdn_bri (D-channel)")
    dchannel: str | None = Field(None, min_length=1, description="isdn_bri: serial device of the tap's D-channel "
                                                                  "receiver, e.g. /dev/ttyAMA2 (hw/isdn-tap.md)")
    b_channel: int | None = Field(None, ge=1, le=2, description="isdn_bri: the B-channel this line records (1 or 2)")
    hook_gpio: int | None = Field(None, ge=2, le=27, description="BCM pin of the opto hook sense (analog)")
    hook_active_low: bool = Field(True, description="Hook input reads low when the handset is off-hook")
    ring_gpio: int | None = Field(None, ge=2, le=27, description="BCM pin of the opto ring detector (analog)")
    ring_active_low: bool = Field(True, description="Ring input reads low while ringing voltage is present")
    led_gpio: int | None = Field(None, ge=2, le=27, description="BCM pin of the recording LED, or none")
    capture_pcm: str = Field("plughw:CARD=Device,DEV=0", description="ALSA PCM the tap is captured from")
    capture_channel: int = Field(0, ge=0, le=7, description="Channel of capture_pcm carrying this line")
    playback_pcm: str = Field("plughw:CARD=Device,DEV=0", description="ALSA PCM that injects into the line")
    playback_channel: int = Field(0, ge=0, le=7, description="Channel of playback_pcm for this line")

    @model_validator(mode="after")
    def _kind_keys(self) -> LineConfig:
        if self.kind == "analog":
            missing = [key for key in ("hook_gpio", "ring_gpio") if getattr(self, key) is None]
            if missing:
                raise ValueError(f"an analog line needs {' and '.join(missing)} (or kind = \"isdn_bri\" with "
                                 "dchannel and b_channel)")
            if self.dchannel is not None or self.b_channel is not None:
                raise ValueError("dchannel and b_channel are for kind = \"isdn_bri\" lines")
        else:
            missing = [key for key in ("dchannel", "b_channel") if getattr(self, key) is None]
            if missing:
                raise ValueError(f"an isdn_bri line needs {' and '.join(missing)}")
            if self.hook_gpio is not None or self.ring_gpio is not None:
                raise ValueError("an isdn_bri line has no hook_gpio or ring_gpio: the D-channel gives its calls")
        return self


class HookConfig(TomlModel):
    debounce_ms: int = Field(30, ge=1, le=500, description="A hook or ring level must hold this long to count")
    inbound_window_s: float = Field(
        8.0, gt=0, le=60, description="Ringing within this many seconds before off-hook makes a call inbound"
    )
    ring_gap_ms: int = Field(
        200, ge=20, le=2000, description="Ring input quiet this long ends a ring burst (bridges 16-25 Hz cycles)"
    )
    number_display: bool | None = Field(
        None, description="Ignore the NTT Number Display off-hook blip (default: on in region JP)"
    )
    number_display_car_max_s: float = Field(
        0.7, gt=0, le=2, description="Ring bursts up to this long are NTT CAR signals, not real rings"
    )
    number_display_max_offhook_s: float = Field(
        3.0, gt=0, le=10, description="An off-hook after CAR shorter than this is the Number Display exchange"
    )


class ToneConfig(TomlModel):
    freqs: tuple[float, ...] = Field(min_length=1, max_length=2, description="Frequencies in Hz")
    cadence: tuple[float, ...] = Field((), description="On/off seconds, repeated; empty = continuous")
    am_hz: float | None = Field(None, description="Amplitude-modulation rate, e.g. 16 Hz JP ringback")


class TelephonyConfig(TomlModel):
    """Overrides of the region profile; every unset value comes from the region."""

    flash_min_ms: int | None = Field(None, ge=0, le=5000,
                                     description="Shorter on-hooks are contact glitches (region default)")
    flash_max_ms: int | None = Field(None, ge=1, le=5000,
                                     description="On-hooks up to this are hook flashes; longer hangs up")
    tones: dict[Literal["dial", "ringback", "busy", "reorder"], ToneConfig] = Field(
        default_factory=dict, description="Call-progress tones of the region's plan to replace")


class AudioConfig(TomlModel):
    sample_rate: Literal[8000, 16000] = Field(8000, description="Capture rate in Hz")
    period_ms: int = Field(20, ge=5, le=100, description="ALSA period; one capture read")
    preroll_seconds: float = Field(1.0, ge=0, le=10, description="Audio kept from before the off-hook edge")
    reopen_backoff_s: float = Field(1.0, gt=0, le=60, description="Wait before reopening a failed PCM")


class AnnouncementConfig(TomlModel):
    enabled: bool = Field(True, description="Play the announcement on every answered call")
    file: Path | None = Field(None, description="WAV file (any rate/width); default: the region's shipped one")
    gain_db: float = Field(0.0, ge=-40, le=6, description="Applied to the announcement before playback")
    warning_tone: bool = Field(False, description="Periodic recorder warning tone during the call")
    warning_tone_hz: float = Field(1400.0, ge=300, le=3400, description="Warning tone frequency (FS-1037C: 1400)")
    warning_tone_s: float = Field(0.5, gt=0, le=5, description="Length of one warning beep")
    warning_tone_every_s: float = Field(15.0, ge=1, le=600, description="A beep this often during the call")
    warning_tone_dbfs: float = Field(-20.0, ge=-60, le=0, description="Level of the beep on the line")


class SignalsConfig(TomlModel):
    """Line intelligence from the audio: DTMF, caller ID, call-progress tones (docs/dsp.md)."""

    enabled: bool = Field(True, description="Run the detectors on every line")
    outbound_announcement: Literal["offhook", "far_end_answer"] = Field(
        "far_end_answer", description="On outbound calls play the announcement at off-hook or when the "
        "far end answers (ringback stops)")
    answer_fallback_s: float = Field(
        6.0, gt=0, le=120, description="With no ringback heard this long after the off-hook or the last "
        "dialled digit, announce anyway: no call goes unannounced")
    far_end_hangup: bool = Field(True, description="Busy or reorder tone after the answer ends the call "
                                 "even while the handset stays off-hook")
    dtmf_control: bool = Field(False, description="In-call DTMF codes from the office phone")
    pause_code: str = Field("**1", pattern=r"^[0-9*#A-D]{2,6}$", description="Pause / resume recording")
    mark_code: str = Field("**2", pattern=r"^[0-9*#A-D]{2,6}$", description="Mark the call")
    mark_tag: str = Field("dtmf-mark", min_length=1, description="Tag a DTMF mark puts on the call")


# Kernel file systems: a "directory" there holds no recordings (and writing into /sys or /proc can
# change the machine).
_KERNEL_TREES = (PurePosixPath("/dev"), PurePosixPath("/proc"), PurePosixPath("/sys"))


def data_dir_problem(path: Path) -> str | None:
    """Why `path` cannot be the data directory, or None.

    The recorder creates, renames and deletes files under it (retention, quarantine): `/` or `/dev`
    there would be a disaster, `/dev/null` or a regular file cannot hold anything, and a relative
    path means a different place for the service, its helpers and each command run by hand.
    Checked on the path as written and on where it leads (`..` and links resolved)."""
    text = str(path)
    if not text or text == "." or not path.is_absolute():
        return f"must be an absolute path such as /var/lib/callrec, not {text if text != '.' else ''!r}"
    lexical = PurePosixPath(os.path.normpath(text))
    try:
        real = PurePosixPath(os.path.realpath(text))
    except (OSError, ValueError):
        real = lexical
    for where in (lexical, real):
        if where == PurePosixPath("/"):
            return "must not be the root directory: the recorder creates and deletes files under it"
        for tree in _KERNEL_TREES:
            if where == tree or tree in where.parents:
                return f"{text!r} is under {tree}, a kernel file system that holds no recordings"
    try:
        if path.exists() and not path.is_dir():
            return f"{text!r} exists and is not a directory"
    except OSError as error:
        return f"{text!r} cannot be looked at: {error.strerror or error}"
    return None


class StorageConfig(TomlModel):
    data_dir: Path = Field(Path("/var/lib/callrec"), description="Recordings, index and journal (an absolute "
                                                                 "directory, not /, not under /dev, /proc or /sys)")
    format: Literal["flac", "wav"] = Field("flac", description="Format of finalized recordings")
    min_call_seconds: float = Field(2.0, ge=0, le=600, description="Shorter calls are discarded")
    sync_interval_s: float = Field(0.5, gt=0, le=1.0, description="Recording data reaches disk this often")

    @field_validator("data_dir")
    @classmethod
    def _usable_data_dir(cls, value: Path) -> Path:
        problem = data_dir_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class Config(TomlModel):
    region: Literal["JP", "US", "EU"] = Field("JP", description="Telephony profile")
    device_name: str = Field("callrec", description="Shown on dashboards and the console")
    lines: tuple[LineConfig, ...] = Field(
        default=None, min_length=1, max_length=4, validate_default=True,
        description="1 to 4 phone lines; default: two on one stereo USB card, pins of hw/pinmap.toml")
    hook: HookConfig = Field(default_factory=HookConfig, description="Hook and ring sensing")
    telephony: TelephonyConfig = Field(default_factory=TelephonyConfig, description="Overrides of the region")
    audio: AudioConfig = Field(default_factory=AudioConfig, description="Capture")
    announcement: AnnouncementConfig = Field(default_factory=AnnouncementConfig,
                                             description="The recording notice played into the line")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="Where and how recordings are kept")
    signals: SignalsConfig = Field(default_factory=SignalsConfig, description="Line intelligence from the audio")
    mqtt: MqttSettings = Field(default_factory=MqttSettings, description="See docs/mqtt.md")
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig, description="Encryption at rest, purpose of use")
    retention: RetentionConfig = Field(default_factory=RetentionConfig,
                                       description="How long calls are kept; the disk guard")
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig, description="Offload to the office archive")
    console: ConsoleConfig = Field(default_factory=ConsoleConfig, description="The technicians' serial console")
    health: HealthConfig = Field(default_factory=HealthConfig, description="Tap-health alarms (docs/tap-health.md)")

    @field_validator("lines", mode="before")
    @classmethod
    def _default_lines(cls, value: Any) -> Any:
        return default_lines() if value is None else value

    @model_validator(mode="after")
    def _lines_consistent(self) -> Config:
        problems = consistency_problems(
            [line.model_dump() for line in self.lines], self.telephony.model_dump(exclude={"tones"}))
        if problems:
            raise ValueError("\n".join(f"{path}: {message}" for path, message in problems))
        return self

    # ---- derived values -------------------------------------------------------------------------

    def profile(self) -> RegionProfile:
        """The region profile with every `[telephony]` override applied."""
        base = PROFILES[self.region]
        tones = dict(base.tones)
        for kind, tone in self.telephony.tones.items():
            tones[kind] = Tone(tone.freqs, tone.cadence, tone.am_hz)
        overrides = {
            key: value
            for key, value in self.telephony.model_dump(exclude={"tones"}).items()
            if value is not None
        }
        merged = {**base.__dict__, **overrides, "tones": tones}
        if merged["flash_min_ms"] >= merged["flash_max_ms"]:
            raise ConfigError(
                "telephony.flash_min_ms: must be smaller than flash_max_ms "
                f"({merged['flash_min_ms']} >= {merged['flash_max_ms']})"
            )
        return RegionProfile(**merged)

    def number_display(self) -> bool:
        return self.region == "JP" if self.hook.number_display is None else self.hook.number_display

    def announcement_file(self) -> Path:
        if self.announcement.file is not None:
            return self.announcement.file
        return ASSETS / f"announcement_{self.profile().announcement}.wav"

    def with_data_dir(self, data_dir: Path | None) -> Config:
        """The `--data DIR` override of storage.data_dir."""
        if data_dir is None:
            return self
        data_dir = data_dir.absolute()   # helpers (PulseAudio, sockets) run elsewhere: no relative paths
        problem = data_dir_problem(data_dir)
        if problem is not None:
            raise ConfigError(f"--data {data_dir}: {problem}")
        return self.model_copy(update={"storage": self.storage.model_copy(update={"data_dir": data_dir})})


def consistency_problems(lines: Any, telephony: Any) -> list[tuple[str, str]]:
    """Rules across keys (unique ids, pins and channels; the flash window), as (key path, message).

    Works on plain data, so `parse` can report these together with every per-key error of the same
    file even when those kept the model from being built: one run names every problem. Values of
    the wrong type are skipped here; the per-key check reports them.
    """
    problems: list[tuple[str, str]] = []
    defaults = {name: field.default for name, field in LineConfig.model_fields.items()}
    seen_ids: set[int] = set()
    pins: dict[int, str] = {}
    b_channels: dict[tuple[Any, Any], str] = {}
    channels: dict[tuple[str, str, int], Any] = {}
    for index, line in enumerate(lines if isinstance(lines, list | tuple) else []):
        if not isinstance(line, dict):
            continue
        where = f"lines[{index}]"
        line_id = line.get("id")
        if _is_int(line_id):
            if line_id in seen_ids:
                problems.append((f"{where}.id", f"line {line_id} is configured twice; ids must be unique 1-4"))
            seen_ids.add(line_id)
        bri = (line.get("dchannel"), line.get("b_channel"))
        if line.get("kind") == "isdn_bri" and isinstance(bri[0], str) and _is_int(bri[1]):
            if bri in b_channels:
                problems.append((f"{where}.b_channel", f"B-channel {bri[1]} of {bri[0]} is already recorded by "
                                                       f"{b_channels[bri]}; a BRI has B1 and B2, one line each"))
            else:
                b_channels[bri] = where
        for key in ("hook_gpio", "ring_gpio", "led_gpio"):
            pin = line.get(key)
            if not _is_int(pin):
                continue
            if pin in pins:
                problems.append((f"{where}.{key}", f"GPIO {pin} is already used by {pins[pin]}"))
            else:
                pins[pin] = f"{where}.{key}"
        for kind in ("capture", "playback"):
            pcm = line.get(f"{kind}_pcm", defaults[f"{kind}_pcm"])
            channel = line.get(f"{kind}_channel", defaults[f"{kind}_channel"])
            if not isinstance(pcm, str) or not _is_int(channel):
                continue
            owner = channels.get((kind, pcm, channel))
            if owner is not None:
                problems.append((f"{where}.{kind}_channel",
                                 f"{kind} channel {channel} of {pcm!r} already carries line {owner}; "
                                 "give each line its own channel or PCM"))
            else:
                channels[(kind, pcm, channel)] = line_id if line_id is not None else index + 1
    if isinstance(telephony, dict):
        flash_min, flash_max = telephony.get("flash_min_ms"), telephony.get("flash_max_ms")
        if _is_int(flash_min) and _is_int(flash_max) and flash_min >= flash_max:
            problems.append(("telephony.flash_min_ms", "must be smaller than telephony.flash_max_ms"))
    return problems


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def default_lines() -> list[dict[str, Any]]:
    """Two lines on one stereo USB card, pins from hw/pinmap.toml (shipped in the package too)."""
    pinmap_path = ASSETS / "pinmap.toml"
    pinmap = tomllib.loads(pinmap_path.read_text()) if pinmap_path.exists() else {}
    lines = []
    for number in (1, 2):
        pins = pinmap.get("line", {}).get(str(number), {})
        lines.append(
            {
                "id": number,
                "hook_gpio": pins.get("hook_gpio", (17, 23)[number - 1]),
                "hook_active_low": pins.get("hook_active_low", True),
                "ring_gpio": pins.get("ring_gpio", (27, 24)[number - 1]),
                "ring_active_low": pins.get("ring_active_low", True),
                "led_gpio": pins.get("led_gpio", (22, 25)[number - 1]),
                "capture_channel": pins.get("capture_channel", number - 1),
                "playback_channel": pins.get("playback_channel", pins.get("capture_channel", number - 1)),
            }
        )
    return lines


def parse(data: dict[str, Any], source: str = "<config>") -> Config:
    """Validate a configuration; a ConfigError lists every problem of the data at once."""
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        problems = field_problems(error, Config)
        # The rules across keys did not run (the model could not be built): check them on the raw
        # data, so a duplicate GPIO is reported in the same run as a wrong type elsewhere.
        raw = data if isinstance(data, dict) else {}
        problems += [f"{path}: {message}"
                     for path, message in consistency_problems(raw.get("lines"), raw.get("telephony"))]
        raise ConfigError(report(source, "configuration", problems)) from None
    try:
        config.profile()  # the flash window across region and overrides
    except ConfigError as error:
        raise ConfigError(report(source, "configuration", [str(error)])) from None
    return config


def load(path: Path | None) -> Config:
    """Read and validate a TOML file; None gives the built-in defaults.

    Every way a file can be unusable (missing, a directory, unreadable, not UTF-8, not TOML, nested
    past any reader) is a ConfigError naming the file and what to do, never an exception from
    deeper down; a leading byte order mark is accepted (config.toml.toml_document).
    """
    if path is None:
        return parse({}, "<defaults>")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file (pass --config FILE)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a configuration file") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    return parse(toml_document(raw, str(path), ConfigError), str(path))
