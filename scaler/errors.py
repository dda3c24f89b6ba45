"""Errors a user can fix. The CLI prints them as one line and exits with status 2."""


class UsageError(Exception):
    """Bad input: an unknown name, a malformed value, a missing or broken file."""


class ScalerWarning(UserWarning):
    """Something a user should know that does not stop the command; the CLI prints it as one line."""


class DataWarning(ScalerWarning):
    """Something about the user's data worth knowing that does not stop a run (files skipped, duplicates).

    The CLI prints it as one line, ``scaler COMMAND: warning: ...``; the data set also keeps it in
    ``describe()["notes"]``, so a run's configuration records it.
    """
