"""callrec: firmware of an appliance that records office phone calls from a line tap."""

import os

# Before numpy loads: the detectors' small matrix products (a 60 ms batch against a few tone bins)
# are far below what OpenBLAS gains from threads, yet each may wake its pool, whose threads spin
# waiting for work. On a Pi, at 50 periods a second per line around the clock, that spinning is CPU
# the recorder pays for nothing (measured: the detectors cost about a third more with the pool).
# An explicit setting in the environment still wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from callrec.errors import CallrecError  # noqa: E402 - after the thread setting, which must come first

__version__ = "0.1.0"
__all__ = ["CallrecError", "__version__"]
