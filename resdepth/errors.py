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
