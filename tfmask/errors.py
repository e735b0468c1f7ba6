"""Errors that tfmask reports to a user in one line (no traceback)."""


class ConfigError(ValueError):
    """A bad configuration; the message is one line naming the key and the fix."""
