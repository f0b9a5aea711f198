"""The exception types the CLI turns into a single line and an exit code.

Anything raised as `UserError` or `InvalidNet` is a mistake the user can fix (bad option, missing file,
a net that cannot be built); every other exception is a bug in resdepth and keeps its traceback.
"""


class InvalidNet(ValueError):
    """A net that cannot be built (an unknown arch, a depth its family cannot build, more memory than allowed).
    The models raise it as a plain ValueError, needing nothing of the CLI; the CLI reports it as one
    line, like a UserError."""


class UserError(Exception):
    """A problem with the user's input or environment, reported as one line."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Halted(UserError):
    """A failure of the machine or the results folder, not of a run (a full disk, a folder a node
    cannot see, its token gone): the sweep stops at once rather than failing every run in turn, its
    runs are left interrupted, and the same command resumes them once the cause is fixed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=1)


def refused_write(exc: OSError) -> str:
    """The one line a write the system refuses gets (a full disk, a read-only folder), whether the
    command line or a worker met it."""
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where} (nothing already written was lost)"
