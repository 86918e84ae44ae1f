"""One root for every error callrec raises on purpose: `except CallrecError` catches them all.

Each leaf also subclasses the builtin it is a kind of (a configuration error is a ValueError, a
sound card that failed an OSError), so code that knows nothing of callrec still catches it the way
it would the builtin.
"""


class CallrecError(Exception):
    """Something callrec refuses or cannot do; the message says what, where and what to do."""
