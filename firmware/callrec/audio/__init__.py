"""Audio: the port to the sound card, its ALSA backend and scripted twin, capture and playback,
the pre-roll buffer, sounds (announcements, tones) and the line's detectors."""

from callrec.audio.alsa import AlsaBackend, native_channels
from callrec.audio.capture import AudioPeriod, CaptureEnded, CaptureFault, CaptureGroup, Clock, Handover
from callrec.audio.detect import LineDetectors
from callrec.audio.playback import PlaybackFailed, PlaybackGroup, PlaybackStarted
from callrec.audio.port import (
    AudioBackend,
    AudioDeviceError,
    ChannelMissing,
    Overrun,
    PcmSink,
    PcmSource,
    PcmSpec,
    SourceEnded,
)
from callrec.audio.preroll import PreRoll
from callrec.audio.sound import Sound, SoundError, load_announcement, read_mono, stream_mono, to_int16, tone

__all__ = ["AlsaBackend", "AudioBackend", "AudioDeviceError", "AudioPeriod", "CaptureEnded", "CaptureFault",
           "CaptureGroup", "ChannelMissing", "Clock", "Handover", "LineDetectors", "Overrun", "PcmSink", "PcmSource",
           "PcmSpec", "PlaybackFailed", "PlaybackGroup", "PlaybackStarted", "PreRoll", "Sound", "SoundError",
           "SourceEnded", "load_announcement", "native_channels", "read_mono", "stream_mono", "to_int16", "tone"]
