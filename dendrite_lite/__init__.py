"""dendrite-lite: a Matrix homeserver in one Python process and one SQLite file."""

__version__ = "0.1.0"
