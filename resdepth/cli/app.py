"""What every command shares: the typer app, the consoles, and options defined once elsewhere."""

from __future__ import annotations

import functools
import inspect
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from resdepth.config import OPTIONS, Role, SweepConfig, option_types

app = typer.Typer(
    help="Reproduce He et al. 2016: deeper plain nets train worse, ResNets do not.",
    epilog="Examples, one per command:\n\n"
    "  resdepth describe --arch plain,resnet --depth 20,56\n\n"
    "  resdepth data download cifar10\n\n"
    "  resdepth data info cifar10\n\n"
    "  resdepth sweep --depth 20,32,44,56\n\n"
    "  resdepth plot results/quick\n\n"
    "  resdepth report results/quick --format markdown\n\n"
    "  resdepth bench --depth 20,56\n\n"
    "  resdepth diagnose results/quick\n\n"
    "  resdepth export tensorboard results/reference/course",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    add_completion=False,
)
data_app = typer.Typer(help="Download and inspect the datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
export_app = typer.Typer(help="Write a results folder in another tool's format.", no_args_is_help=True)
app.add_typer(export_app, name="export")
# Logs and pipes get wide lines rather than tables squeezed to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
PANELS = {
    Role.GRID: "What to train",
    Role.RECIPE: "The recipe (He et al. 2016 §4.2)",
    Role.EXECUTION: "Execution",
}


def help_of(name: str) -> str:
    """A sweep option's help text, for the commands that take the same option."""
    return OPTIONS[name].help


def _cli_parameter(name: str) -> inspect.Parameter:
    """A `SweepConfig` field as a command-line option whose default, None, means "not given"."""
    meta = OPTIONS[name]
    kind, is_list = option_types()[name]
    value = getattr(SweepConfig(), name)
    shown = ",".join(str(v) for v in value) if is_list else value
    info = typer.Option(
        meta.flag or f"--{name.replace('_', '-')}",
        help=meta.help,
        rich_help_panel=PANELS[meta.role],
        show_default=str(shown) if shown not in (None, False) else False,
    )
    annotation = Annotated[(str if is_list else kind) | None, info]  # type: ignore[valid-type]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)


def sweep_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give `command` every `SweepConfig` field as an option; it receives those the user gave (the
    others None) as `given`, and its own parameters as they are."""
    hints = typing.get_type_hints(command, include_extras=True)
    own = [
        p.replace(annotation=hints[p.name])
        for p in inspect.signature(command).parameters.values()
        if p.name != "given"
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        command(given={name: kwargs.pop(name) for name in OPTIONS}, **kwargs)

    params = own + [_cli_parameter(name) for name in OPTIONS]
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return wrapper


Depth = Annotated[str, typer.Option(help=help_of("depth"))]
Norm = Annotated[str, typer.Option(help=help_of("norm"))]
Activation = Annotated[str, typer.Option(help=help_of("activation"))]
DataDir = Annotated[str | None, typer.Option(help=help_of("data_dir"))]
Offline = Annotated[bool, typer.Option(help=help_of("offline"))]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
Results = Annotated[Path, typer.Argument(metavar="RESULTS", help="A results folder or its metrics.csv.")]


def _fmt_int(n: int) -> str:
    return f"{n:,}"
