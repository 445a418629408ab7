"""termdeposit: decide whom a bank's call centre should call about a term deposit, and why."""

__version__ = "0.1.0"
