"""The `resdepth` command: each command parses its options, calls one function that does the work, and
prints what it returned; known errors (`UserError`) become one line and an exit code. One module per
command (or pair of commands); `app` holds what they share."""

from __future__ import annotations

import sys
import warnings

from resdepth.cli import bench, data, describe, diagnose, export, report, sweep  # noqa: F401  (they register)
from resdepth.cli.app import app, err
from resdepth.errors import InvalidNet, UserError, refused_write

__all__ = ["app", "main"]


def _warning_line(message: Warning | str, category: type[Warning], *_: object, **__: object) -> str:
    return f"warning: {message}\n"


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit code 2 (or their own)."""
    warnings.formatwarning = _warning_line  # type: ignore[assignment]
    try:
        app()
    except (UserError, InvalidNet) as exc:
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code if isinstance(exc, UserError) else 2)
    except OSError as exc:  # a full disk, a read-only folder: the system's reason, in one line
        err.print(f"error: {refused_write(exc)}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)
