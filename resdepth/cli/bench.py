"""`resdepth bench`: resdepth's training loop against the textbook loop."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer
from rich.table import Table

from resdepth.benchmarks.bench import Bench, PackRates, Setting, paper_run_seconds, run, run_packs
from resdepth.cli.app import Activation, AsJson, Norm, app, console, help_of
from resdepth.config import OPTIONS, parse_list
from resdepth.models import RESIDUAL_ARCHS
from resdepth.runs import PAPER_EPOCHS


@app.command(
    epilog="Examples:\n\n  resdepth bench\n\n  resdepth bench --arch resnet --depth 20,56,110 --seconds 20 --json\n\n"
    "  resdepth bench --pack 1,2,4,8\n\n"
    "  resdepth bench --precision fp32 --json > results/reference/bench/my-cpu-fp32.json"
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
    pack: Annotated[
        str | None,
        typer.Option(
            help="Instead: sweep images/s (all runs together) with K runs packed into one model, "
            "for each K, e.g. 1,2,4,8 (sweep --pack)."
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Training images/s of resdepth's loop vs the textbook DataLoader loop, and projected paper times."""
    setting = Setting(
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
    if pack is not None:
        _print_packs(*run_packs(setting, parse_list(pack, int, "--pack")), as_json)
        return
    b = run(setting)
    if as_json:
        print(json.dumps(_as_json(b), indent=2))
    else:
        _print_table(b)


def _print_packs(hardware: str, measured: list[PackRates], as_json: bool) -> None:
    if as_json:
        rows = [{**m.__dict__, "rates": {str(k): r for k, r in m.rates.items()}} for m in measured]
        print(json.dumps({"hardware": hardware, "packs": rows}, indent=2))
        return
    packs = list(measured[0].rates)
    table = Table(title=f"sweep throughput, K runs packed, batch 128 each, {hardware}", title_justify="left")
    for col in ("model", "device", "precision", "engine", *(f"K={k} img/s" for k in packs), "best"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for m in measured:
        one = m.rates[packs[0]]
        cells = [f"{r:,.0f} ({r / one:.2f}x)" if k != packs[0] else f"{r:,.0f}" for k, r in m.rates.items()]
        table.add_row(m.label, m.device, m.precision, m.engine, *cells, f"K={m.best}")
    console.print(table)


def _as_json(b: Bench) -> dict[str, object]:
    import torch

    per_net = f"epochs_{PAPER_EPOCHS}_seconds"
    rows = [
        {
            **m.__dict__,
            "ratio": m.ratio,
            per_net: paper_run_seconds(m.resdepth),
            f"textbook_{per_net}": paper_run_seconds(m.textbook),
        }
        for m in b.measurements
    ]
    return {
        "hardware": b.hardware,
        "torch": torch.__version__,
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "runs": rows,
        "paper_sweep_seconds": b.paper_sweep_seconds,
    }


def _print_table(b: Bench) -> None:
    from resdepth.progress import duration

    table = Table(title=f"training throughput, batch 128, {b.hardware}", title_justify="left")
    paper = f"{PAPER_EPOCHS} epochs"
    columns = ("model", "device", "precision", "engine", "resdepth img/s", "textbook img/s", "ratio")
    for col in (*columns, paper, f"{paper} (textbook)"):
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
            duration(paper_run_seconds(m.resdepth)),
            duration(paper_run_seconds(m.textbook)),
        )
    console.print(table)
    sweep = b.paper_sweep_seconds
    # The projection is at the precision measured, whatever the config pins.
    precisions = " and ".join(sorted({m.precision for m in b.measurements}))
    console.print(
        f"experiments/paper.toml ({paper} per net) in {precisions}: about {duration(sweep['resdepth'])} with resdepth, "
        f"{duration(sweep['textbook'])} with the textbook loop",
        highlight=False,
    )
