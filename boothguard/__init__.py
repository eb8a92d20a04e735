"""boothguard: the booth PC agent call centers trust."""

__version__ = "0.1.0"
