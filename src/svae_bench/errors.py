"""Errors that the command line reports as one line with exit code 2."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad config value, file or path: the message names it and what is allowed."""
