"""callrec: firmware of an appliance that records office phone calls from a line tap."""

from callrec.errors import CallrecError

__version__ = "0.1.0"
__all__ = ["CallrecError", "__version__"]
