"""The one exception type the CLI turns into a single line and an exit code.

Anything raised as `UserError` is a mistake the user can fix (bad option, missing file); every other
exception is a bug in resdepth and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input or environment, reported as one line."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
