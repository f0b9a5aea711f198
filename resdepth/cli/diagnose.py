"""`resdepth diagnose`: why ResNets work, measured on fresh nets or a sweep's checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from resdepth.cli.app import DataDir, Offline, app, console, err
from resdepth.config import check_seeds, parse_list
from resdepth.diagnose.registry import LOOKS, REGISTRY, START_ITERATIONS
from resdepth.errors import UserError
from resdepth.models import RESIDUAL_ARCHS, NetSpec
from resdepth.progress import bars

if TYPE_CHECKING:
    from resdepth.diagnose import Diagnosis

# What `resdepth diagnose` measures by default, by the CSV each writes; `start` (training) only when asked.
DEFAULT_WHAT = ",".join(LOOKS)


Results = Annotated[
    Path | None,
    typer.Argument(
        metavar="[RESULTS]", help="A results folder with checkpoints; omit to measure fresh nets."
    ),
]
Arch = Annotated[
    str | None, typer.Option(help="plain,resnet: the fresh nets built, or a results folder's runs measured.")
]
Depths = Annotated[
    str | None,
    typer.Option(help="Depths, e.g. 20,56: of the fresh nets built, or of a results folder's runs measured."),
]
Norms = Annotated[
    str | None,
    typer.Option(help="bn and/or none: of the fresh nets (default bn), or of a results folder's runs."),
]
Activations = Annotated[
    str | None,
    typer.Option(
        help="relu, tanh and/or sigmoid: of the fresh nets (default relu), or of a results folder's runs."
    ),
]
Seeds = Annotated[
    str | None,
    typer.Option(
        help="Seeds: of the fresh nets (each its own init; default 0), or of a results folder's runs."
    ),
]
Images = Annotated[str, typer.Option(help="Fresh nets: the images measured on.")]
TestSubset = Annotated[
    int | None, typer.Option(help="Class-balanced N test images (default: the run's own, else all).")
]
What = Annotated[
    str,
    typer.Option(
        help="Measurements, comma-separated: "
        + "; ".join(f"{name}: {m.help}" for name, m in REGISTRY.items())
        + f". Default: {', '.join(LOOKS)} (the others take minutes a net)."
    ),
]
Iterations = Annotated[int, typer.Option(help="--what start: iterations to train each net.")]
Out = Annotated[
    Path | None,
    typer.Option(help="Fresh nets: folder for diagnostics/ and figures/ (default results/diagnose)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print every row as JSON.")]


@app.command(
    epilog="Examples:\n\n  resdepth diagnose results/quick\n\n"
    "  resdepth diagnose --arch plain,resnet --depth 20,56 --norm bn,none --activation relu,sigmoid --what grads\n\n"
    "  resdepth diagnose results/quick --what lesion,identity --json\n\n"
    "  resdepth diagnose --arch plain,resnet --depth 56 --seeds 0,1,2,3,4 --what start --iterations 300\n\n"
    "  resdepth diagnose results/reference/longer --what landscape,shatter,paths\n\n"
    "  resdepth diagnose results/reference/longer --depth 20 --what landscape   # its 20-layer runs only"
)
def diagnose(
    results_path: Results = None,
    arch: Arch = None,
    depth: Depths = None,
    norm: Norms = None,
    activation: Activations = None,
    seeds: Seeds = None,
    dataset: Images = "cifar10",
    data_dir: DataDir = None,
    test_subset: TestSubset = None,
    what: What = DEFAULT_WHAT,
    iterations: Iterations = START_ITERATIONS,
    out: Out = None,
    offline: Offline = False,
    as_json: AsJson = False,
) -> None:
    """Measure why ResNets work, on fresh nets or a sweep's checkpoints: gradients, responses,
    lesions, identity, signal scale (--what says which), and the start of training."""
    from resdepth import diagnose as dg

    if results_path is not None and out is not None:
        raise UserError("--out is for fresh nets; a RESULTS folder gets its own diagnostics/ and figures/")
    given = _given(arch, depth, norm, activation, seeds)
    chosen = dg.Chosen(tuple((field, tuple(values)) for field, values in given.items()))
    specs = [
        NetSpec(a, d, norm=n, activation=f)
        for n in given.get("norm", ["bn"])
        for f in given.get("activation", ["relu"])
        for a in given.get("arch", list(RESIDUAL_ARCHS))
        for d in given.get("depth", [20, 56])
    ]

    def progress(text: str) -> None:
        if not as_json:
            err.print(f"measuring {text}", highlight=False)

    with bars(err, shown=not as_json) as step:
        result = dg.run(
            results_path,
            specs=specs,
            seeds=given.get("seed", [0]),
            chosen=chosen,
            what=parse_list(what, str, "--what"),
            iterations=iterations,
            dataset=dataset,
            data_dir=data_dir,
            test_subset=test_subset,
            out=out,
            offline=offline,
            progress=progress,
            step=step,
        )
    if as_json:
        print(json.dumps(result.tables, indent=2, default=str))
    else:
        _print(result)


def _given(
    arch: str | None, depth: str | None, norm: str | None, activation: str | None, seeds: str | None
) -> dict[str, list[Any]]:
    """The net options given, by RunConfig field: the fresh nets to build, or a folder's runs to measure."""
    given: dict[str, list[Any]] = {}
    for field, option, kind, text in (
        ("arch", "--arch", str, arch),
        ("depth", "--depth", int, depth),
        ("norm", "--norm", str, norm),
        ("activation", "--activation", str, activation),
        ("seed", "--seeds", int, seeds),
    ):
        if text is not None:
            given[field] = parse_list(text, kind, option)
            if not given[field]:
                raise UserError(f"{option} needs at least one value")
    check_seeds(given.get("seed", []))
    return given


def _print(result: Diagnosis) -> None:
    from resdepth.diagnose import summaries

    for name, summary in summaries(result.tables).items():
        table = Table(title=name, title_justify="left")
        table.add_column("net")
        table.add_column("state")
        for col in summary.columns:
            table.add_column(str(col), justify="right")
        for key, row in zip(summary.index, summary.to_numpy(float), strict=True):
            table.add_row(*(str(k) for k in key), *(f"{v:.3g}" for v in row))
        console.print(table)
    for path in result.written:
        console.print(f"wrote {path}", highlight=False)
