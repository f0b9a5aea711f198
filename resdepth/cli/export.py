"""`resdepth export tensorboard`: a results folder as TensorBoard event files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from resdepth.cli.app import Results, console, export_app


@export_app.command(
    epilog="Examples:\n\n  resdepth export tensorboard results/reference/course\n\n"
    "  resdepth export tensorboard results/quick --out runs/quick   (then: tensorboard --logdir runs)"
)
def tensorboard(
    results_path: Results,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the event files (default RESULTS/tensorboard).")
    ] = None,
) -> None:
    """One TensorBoard run per run of the folder, named by net and seed, tagged with its recipe: train,
    test (and validation) error and loss, learning rate and images per second against iterations."""
    from resdepth import events

    written = events.export(results_path, out)
    root = out if out is not None else written[0].parent
    console.print(
        f"{len(written)} runs written to {root}; view them with: tensorboard --logdir {root}", highlight=False
    )
