"""A stand-in `RPi` package for running `callrec run` off a Pi in tests (see GPIO.py)."""
