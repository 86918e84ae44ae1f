"""callrec: firmware of an appliance that records office phone calls from a line tap."""

__version__ = "0.1.0"
