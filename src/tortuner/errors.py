"""The one exception type meant for users."""


class TortunerError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits with status 2.

    Raise it with the file (or flag) and the problem in one line, e.g. `f"{path}: not a dVAE state dict"`.
    """
