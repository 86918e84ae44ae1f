"""What the simulated lines carry, as alsa-lib's `file` plugin reads it, and the PCMs that read it.

Each simulated card gets one raw interleaved infile (S16_LE, as wide as the lines on it need) and
a pair of PCM definitions in a private asound.conf: capture from the infile (over `null`, unpaced,
or a private PulseAudio's null sink, paced) and playback into a WAV. alsa-lib reads its
configuration once per process, so this is written before the first PCM is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from callrec.audio import SoundError, stream_mono, to_int16
from callrec.sim.scenario import ScenarioError, ScenarioLine

TAIL_S = 2.0     # audio after the last event, so the hang-up decision (flash window) can be taken
BLOCK = 8000 * 60   # a minute at a time: an hour of line audio costs no more memory than that


@dataclass(frozen=True)
class CardFiles:
    """The files and PCM names of one simulated card."""

    capture_pcm: str
    playback_pcm: str
    infile: Path
    played: Path
    frames: int          # how much of the infile the simulation reads
    width: int           # channels


def convert_to_raw(source: Path, raw: Path, rate: int) -> int:
    """Stream any audio file into raw S16_LE mono at `rate`; returns frames written."""
    written = 0
    with open(raw, "wb") as out:
        for block in stream_mono(source, rate):
            out.write(to_int16(block).astype("<i2").tobytes())
            written += len(block)
    return written


def write_card(workdir: Path, index: int, group: list[ScenarioLine], channels: dict[int, int], rate: int,
               period: int) -> CardFiles:
    """The card's interleaved raw infile, from each line's audio on its channel."""
    name = f"card{index}"
    width = max(channels.values()) + 1
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
    infile = workdir / f"{name}.raw"
    sources = {line: open(path, "rb") for line, path in mono.items()}  # noqa: SIM115 - closed below
    try:
        with open(infile, "wb") as out:
            for start in range(0, total, BLOCK):
                n = min(BLOCK, total - start)
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
    return CardFiles(f"callrec_sim_in_{index}", f"callrec_sim_out_{index}", infile,
                     workdir / f"played_{name}.wav", frames, width)


def asound_conf(card: CardFiles, capture_slave: str, playback_slave: str) -> str:
    return (f'pcm.{card.capture_pcm} {{\n  type file\n  slave.pcm {capture_slave}\n'
            f'  file "/dev/null"\n  infile "{card.infile}"\n  format "raw"\n}}\n'
            f'pcm.{card.playback_pcm} {{\n  type file\n  slave.pcm {playback_slave}\n'
            f'  file "{card.played}"\n  format "wav"\n  perm 0644\n}}\n')
