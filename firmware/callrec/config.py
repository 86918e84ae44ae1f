"""The whole configuration: one TOML file, validated at start, every error naming its key path.

Every key has a default, so a file holds only what it changes (docs/callrec.example.toml documents
each). Region profiles fill the telephony figures; any of them can be overridden in `[telephony]`.
The models forbid unknown keys so a typo is an error, not a silently ignored setting.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from callrec.mqtt.settings import MqttSettings
from callrec.regions import PROFILES, RegionProfile, Tone

DEFAULT_CONFIG_PATH = Path("/etc/callrec/callrec.toml")
ASSETS = Path(__file__).parent / "assets"


class ConfigError(Exception):
    """The configuration is not usable; the message lists every problem with its key path."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LineConfig(_Section):
    """One phone line: its GPIO sense inputs, LED and sound-card channels."""

    id: int = Field(ge=1, le=4, description="Line number, 1 to 4, as shown on the case and in events")
    name: str = Field("", description="Free label, e.g. 'Sales'")
    hook_gpio: int = Field(ge=2, le=27, description="BCM pin of the opto hook sense")
    hook_active_low: bool = Field(True, description="Hook input reads low when the handset is off-hook")
    ring_gpio: int = Field(ge=2, le=27, description="BCM pin of the opto ring detector")
    ring_active_low: bool = Field(True, description="Ring input reads low while ringing voltage is present")
    led_gpio: int | None = Field(None, ge=2, le=27, description="BCM pin of the recording LED, or none")
    capture_pcm: str = Field("plughw:CARD=Device,DEV=0", description="ALSA PCM the tap is captured from")
    capture_channel: int = Field(0, ge=0, le=7, description="Channel of capture_pcm carrying this line")
    playback_pcm: str = Field("plughw:CARD=Device,DEV=0", description="ALSA PCM that injects into the line")
    playback_channel: int = Field(0, ge=0, le=7, description="Channel of playback_pcm for this line")


class HookConfig(_Section):
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


class ToneConfig(_Section):
    freqs: tuple[float, ...] = Field(min_length=1, max_length=2, description="Frequencies in Hz")
    cadence: tuple[float, ...] = Field((), description="On/off seconds, repeated; empty = continuous")
    am_hz: float | None = Field(None, description="Amplitude-modulation rate, e.g. 16 Hz JP ringback")


class TelephonyConfig(_Section):
    """Overrides of the region profile; every unset value comes from the region."""

    ring_on_s: float | None = Field(None, gt=0, le=10)
    ring_off_s: float | None = Field(None, gt=0, le=10)
    flash_min_ms: int | None = Field(None, ge=0, le=5000)
    flash_max_ms: int | None = Field(None, ge=1, le=5000)
    tones: dict[Literal["dial", "ringback", "busy", "reorder"], ToneConfig] = Field(default_factory=dict)


class AudioConfig(_Section):
    sample_rate: Literal[8000, 16000] = Field(8000, description="Capture rate in Hz")
    period_ms: int = Field(20, ge=5, le=100, description="ALSA period; one capture read")
    preroll_seconds: float = Field(1.0, ge=0, le=10, description="Audio kept from before the off-hook edge")
    reopen_backoff_s: float = Field(1.0, gt=0, le=60, description="Wait before reopening a failed PCM")


class AnnouncementConfig(_Section):
    enabled: bool = Field(True, description="Play the announcement on every answered call")
    file: Path | None = Field(None, description="WAV file (any rate/width); default: the region's shipped one")
    gain_db: float = Field(0.0, ge=-40, le=6, description="Applied to the announcement before playback")
    warning_tone: bool = Field(False, description="Periodic recorder warning tone during the call")
    warning_tone_hz: float = Field(1400.0, ge=300, le=3400)
    warning_tone_s: float = Field(0.5, gt=0, le=5)
    warning_tone_every_s: float = Field(15.0, ge=1, le=600)
    warning_tone_dbfs: float = Field(-20.0, ge=-60, le=0)


class SignalsConfig(_Section):
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


class StorageConfig(_Section):
    data_dir: Path = Field(Path("/var/lib/callrec"), description="Recordings, index and journal")
    format: Literal["flac", "wav"] = Field("flac", description="Format of finalized recordings")
    min_call_seconds: float = Field(2.0, ge=0, le=600, description="Shorter calls are discarded")
    sync_interval_s: float = Field(1.0, gt=0, le=1.0, description="Recording data reaches disk this often")


class Config(_Section):
    region: Literal["JP", "US", "EU"] = Field("JP", description="Telephony profile")
    device_name: str = Field("callrec", description="Shown on dashboards and the console")
    lines: tuple[LineConfig, ...] = Field(
        default=None, min_length=1, max_length=4, validate_default=True  # type: ignore[arg-type]
    )
    hook: HookConfig = Field(default_factory=HookConfig)
    telephony: TelephonyConfig = Field(default_factory=TelephonyConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    announcement: AnnouncementConfig = Field(default_factory=AnnouncementConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    signals: SignalsConfig = Field(default_factory=SignalsConfig)
    mqtt: MqttSettings = Field(default_factory=MqttSettings, description="See docs/mqtt.md")

    @field_validator("lines", mode="before")
    @classmethod
    def _default_lines(cls, value: Any) -> Any:
        return default_lines() if value is None else value

    @model_validator(mode="after")
    def _lines_consistent(self) -> Config:
        seen_ids: set[int] = set()
        pins: dict[int, str] = {}
        channels: dict[tuple[str, str, int], int] = {}
        for index, line in enumerate(self.lines):
            where = f"lines[{index}]"
            if line.id in seen_ids:
                raise ValueError(f"{where}.id: line {line.id} is configured twice; ids must be unique 1-4")
            seen_ids.add(line.id)
            for key in ("hook_gpio", "ring_gpio", "led_gpio"):
                pin = getattr(line, key)
                if pin is None:
                    continue
                if pin in pins:
                    raise ValueError(f"{where}.{key}: GPIO {pin} is already used by {pins[pin]}")
                pins[pin] = f"{where}.{key}"
            for kind, pcm, channel in (
                ("capture", line.capture_pcm, line.capture_channel),
                ("playback", line.playback_pcm, line.playback_channel),
            ):
                owner = channels.get((kind, pcm, channel))
                if owner is not None:
                    raise ValueError(
                        f"{where}.{kind}_channel: {kind} channel {channel} of {pcm!r} already carries "
                        f"line {owner}; give each line its own channel or PCM"
                    )
                channels[(kind, pcm, channel)] = line.id
        flash_min = self.telephony.flash_min_ms
        flash_max = self.telephony.flash_max_ms
        if flash_min is not None and flash_max is not None and flash_min >= flash_max:
            raise ValueError("telephony.flash_min_ms: must be smaller than telephony.flash_max_ms")
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
        return self.model_copy(update={"storage": self.storage.model_copy(update={"data_dir": data_dir})})


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


def _key_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _format_errors(error: ValidationError, source: str) -> str:
    items = error.errors()
    locs = [item["loc"] for item in items]
    messages = []
    for item in items:
        loc = item["loc"]
        # A container error caused by an error inside it (e.g. a tuple left empty) only repeats it.
        if any(other != loc and other[: len(loc)] == loc for other in locs):
            continue
        path, message = _key_path(loc), item["msg"]
        if item["type"] == "extra_forbidden":
            message = f"unknown key; allowed here: {', '.join(_allowed_keys(loc))}"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
            if not path and ": " in message:
                path, _, message = message.partition(": ")
        else:
            message = f"{message} (got {item.get('input')!r})"
        messages.append(f"  {path}: {message}" if path else f"  {message}")
    return "\n".join([f"{source}: {len(messages)} problem(s) in the configuration:", *messages])


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))
        model = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return []
    return sorted(model.model_fields)


def parse(data: dict[str, Any], source: str = "<config>") -> Config:
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_errors(error, source)) from None
    try:
        config.profile()  # the flash window across region and overrides
    except ConfigError as error:
        raise ConfigError(f"{source}: 1 problem(s) in the configuration:\n  {error}") from None
    return config


def load(path: Path | None) -> Config:
    """Read and validate a TOML file; None gives the built-in defaults."""
    if path is None:
        return parse({}, "<defaults>")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file (pass --config FILE)") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return parse(data, str(path))
