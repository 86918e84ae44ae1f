"""The CPU encryption adds per line-hour: the recorder's disk path with and without `[privacy]
recipient`, measured in one run.

Run from the repository root:

    .venv/bin/python bench/bench_encryption.py             # one line-hour at 8 kHz
    .venv/bin/python bench/bench_encryption.py --minutes 10 --rate 16000

Both pipelines do what the recorder does with one call: append 20 ms periods to the part file,
sync it every second, then finalize it into FLAC and hash the result. Encrypted, the part is the
age-frames format (one age message per 0.5 s) and the FLAC is encoded in memory and written as an
age file. CPU seconds are the process's (time.process_time), so disk waits do not count; the
figure to read is the encrypted pipeline's CPU per line-hour next to the plain one, and the ratio.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from callrec.privacy import Recipients, new_identity
from callrec.recording.files import PartWriter, finalize

log = logging.getLogger("bench_encryption")


def one_call(directory: Path, audio: np.ndarray, rate: int, recipients: Recipients | None) -> tuple[float, int]:
    """CPU seconds and final bytes of one call through the recorder's disk path."""
    period = rate // 50
    start = time.process_time()
    writer = PartWriter(directory, "20260101T000000000Z-L1-bench", {"sample_rate": rate}, recipients)
    synced_at = 0
    for at in range(0, len(audio), period):
        writer.write(audio[at:at + period])
        if at - synced_at >= rate:
            writer.sync()
            synced_at = at
    writer.close()
    suffix = ".flac.age" if recipients is not None else ".flac"
    final = finalize(writer.part_path, directory / f"bench{suffix}", "flac", rate, identity=writer.identity,
                     recipients=recipients)
    used = time.process_time() - start
    writer.remove()
    final.path.unlink()
    return used, final.bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the call (default one hour)")
    parser.add_argument("--rate", type=int, default=8000)
    parser.add_argument("--dir", type=Path, help="where the files go (default a temporary directory)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rng = np.random.default_rng(1)
    frames = int(args.minutes * 60 * args.rate)
    # speech-like: noise shaped by a slow envelope, at a talking level
    envelope = 0.5 + 0.5 * np.sin(np.linspace(0, frames / args.rate, frames))
    audio = (rng.normal(0, 3000, frames) * envelope).clip(-32768, 32767).astype(np.int16)
    _identity, recipient = new_identity()
    recipients = Recipients.parse([recipient])
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        plain, plain_bytes = one_call(directory, audio, args.rate, None)
        sealed, sealed_bytes = one_call(directory, audio, args.rate, recipients)
    scale = 60.0 / args.minutes
    log.info("one call of %.0f min at %d Hz, mono S16:", args.minutes, args.rate)
    log.info("  plain      %7.2f CPU s (%6.2f per line-hour), final %d bytes", plain, plain * scale, plain_bytes)
    log.info("  encrypted  %7.2f CPU s (%6.2f per line-hour), final %d bytes", sealed, sealed * scale, sealed_bytes)
    log.info("  added by encryption: %.2f CPU s per line-hour (%.1f %% of an hour of one core); ratio %.2f",
             (sealed - plain) * scale, 100 * (sealed - plain) * scale / 3600, sealed / plain if plain else float("nan"))


if __name__ == "__main__":
    main()
