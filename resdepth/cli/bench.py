"""`resdepth bench`: resdepth's training loop against the textbook loop."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from resdepth.cli.app import Activation, AsJson, Norm, app, console, help_of
from resdepth.config import OPTIONS, parse_list
from resdepth.models import RESIDUAL_ARCHS


@app.command(
    epilog="Examples:\n\n  resdepth bench\n\n  resdepth bench --arch resnet --depth 20,56,110 --seconds 20 --json"
)
def bench(
    arch: Annotated[str, typer.Option(help="plain, resnet (comma-separated).")] = ",".join(RESIDUAL_ARCHS),
    depth: Annotated[str, typer.Option(help="Depths, e.g. 20,56,110.")] = "20,56",
    norm: Norm = "bn",
    activation: Activation = "relu",
    device: Annotated[str, typer.Option(help=help_of("device"))] = "auto",
    precision: Annotated[
        str, typer.Option(help=help_of("precision") + " The textbook loop is fp32.")
    ] = "auto",
    seconds: Annotated[float, typer.Option(help="Timed seconds per loop and net (after warm-up).")] = 10.0,
    compile: Annotated[bool, typer.Option("--compile", help=help_of("compile"))] = False,
    cuda_graphs: Annotated[
        bool | None, typer.Option(OPTIONS["cuda_graphs"].flag, help=help_of("cuda_graphs"))
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Training images/s of resdepth's loop vs the textbook DataLoader loop, and projected paper times."""
    import torch

    from resdepth.benchmarks import bench as benchmarks
    from resdepth.progress import duration

    b = benchmarks.run(
        parse_list(arch, str, "--arch"),
        parse_list(depth, int, "--depth"),
        device=device,
        precision=precision,
        seconds=seconds,
        norm=norm,
        activation=activation,
        compile=compile,
        cuda_graphs=cuda_graphs,
    )
    paper = b.paper_sweep_seconds
    if as_json:
        rows = [
            {
                **m.__dict__,
                "ratio": m.ratio,
                "epochs_164_seconds": benchmarks.paper_run_seconds(m.resdepth),
                "textbook_epochs_164_seconds": benchmarks.paper_run_seconds(m.textbook),
            }
            for m in b.measurements
        ]
        print(
            json.dumps(
                {
                    "hardware": b.hardware,
                    "torch": torch.__version__,
                    "runs": rows,
                    "paper_sweep_seconds": paper,
                },
                indent=2,
            )
        )
        return
    table = Table(title=f"training throughput, batch 128, {b.hardware}", title_justify="left")
    for col in (
        "model",
        "device",
        "precision",
        "engine",
        "resdepth img/s",
        "textbook img/s",
        "ratio",
        "164 epochs",
        "164 epochs (textbook)",
    ):
        table.add_column(col, justify="left" if col == "model" else "right")
    for m in b.measurements:
        table.add_row(
            m.label,
            m.device,
            m.precision,
            m.engine,
            f"{m.resdepth:,.0f}",
            f"{m.textbook:,.0f}",
            f"{m.ratio:.2f}x",
            duration(benchmarks.paper_run_seconds(m.resdepth)),
            duration(benchmarks.paper_run_seconds(m.textbook)),
        )
    console.print(table)
    console.print(
        f"experiments/paper.toml (164 epochs per net): about {duration(paper['resdepth'])} with resdepth, "
        f"{duration(paper['textbook'])} with the textbook loop",
        highlight=False,
    )
