"""Errors a user can fix. The CLI prints them as one line and exits with status 2."""


class UsageError(Exception):
    """Bad input: an unknown name, a malformed value, a missing or broken file."""
