"""The `resdepth` command: each command parses its options, calls one function that does the work, and
prints what it returned; known errors (`UserError`) become one line and an exit code. One module per
command (or pair of commands); `app` holds what they share."""

from __future__ import annotations

import sys
import warnings
from typing import Any

import typer

from resdepth.cli import bench, data, describe, diagnose, export, report, sweep  # noqa: F401  (they register)
from resdepth.cli.app import app, err
from resdepth.errors import InvalidNet, UserError, refused_write

__all__ = ["app", "main"]

# The root of click's errors, from the click typer uses (its own copy in recent typer releases).
CLICK_ERROR: Any = next(
    (c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"), typer.BadParameter
)


def _warning_line(message: Warning | str, category: type[Warning], *_: object, **__: object) -> str:
    return f"warning: {message}\n"


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit code 2 (or their own)."""
    warnings.formatwarning = _warning_line  # type: ignore[assignment]
    try:
        code = app(standalone_mode=False)  # click's own errors come here, not to its boxed panel
    except CLICK_ERROR as exc:  # an unknown option, a value that is not a number
        if type(exc).__name__ == "NoArgsIsHelpError":  # `resdepth data`: its help is printed
            sys.exit(exc.exit_code)
        ctx = getattr(exc, "ctx", None)
        where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        err.print(f"error: {exc.format_message()}{where}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:  # end of input at a prompt
        err.print("error: aborted", highlight=False)
        sys.exit(1)
    except (UserError, InvalidNet) as exc:
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code if isinstance(exc, UserError) else 2)
    except OSError as exc:  # a full disk, a read-only folder: the system's reason, in one line
        err.print(f"error: {refused_write(exc)}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)
    if isinstance(code, int) and code:  # a command's own exit code (typer.Exit), Ctrl-C's 130
        sys.exit(code)
