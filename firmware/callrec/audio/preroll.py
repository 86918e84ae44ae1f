"""The pre-roll ring buffer: the last few seconds of a line, so a recording starts before the edge.

Frames are addressed by their absolute index on the line (counted since capture started), so the
core can ask for "everything from frame N" where N is the off-hook edge minus the pre-roll, even
though the decision that a call began is taken a debounce later.
"""

from __future__ import annotations

import numpy as np


class PreRoll:
    def __init__(self, capacity_frames: int) -> None:
        self._buf = np.zeros(max(capacity_frames, 1), dtype=np.int16)
        self._end = 0  # absolute index one past the newest frame held

    @property
    def end_frame(self) -> int:
        return self._end

    @property
    def start_frame(self) -> int:
        return max(0, self._end - len(self._buf))

    def append(self, samples: np.ndarray) -> None:
        cap = len(self._buf)
        n = len(samples)
        start = self._end
        if n > cap:
            samples = samples[-cap:]
            start = self._end + n - cap
        m = len(samples)
        pos = start % cap
        first = min(m, cap - pos)
        self._buf[pos : pos + first] = samples[:first]
        self._buf[: m - first] = samples[first:]
        self._end += n

    def silence(self, frames: int) -> None:
        """`frames` of the line that were not heard (the card was away): they read as silence."""
        held = min(frames, len(self._buf))
        self._end += frames - held
        self.append(np.zeros(held, dtype=np.int16))

    def since(self, frame: int) -> np.ndarray:
        """Frames from absolute index `frame` to the newest; clipped to what is still held."""
        frame = max(frame, self.start_frame)
        n = self._end - frame
        if n <= 0:
            return np.zeros(0, dtype=np.int16)
        cap = len(self._buf)
        pos = frame % cap
        if pos + n <= cap:
            return self._buf[pos : pos + n].copy()
        return np.concatenate([self._buf[pos:], self._buf[: n - (cap - pos)]])
