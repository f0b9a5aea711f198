"""The `resdepth` command: each command parses its options, calls one function that does the work, and
prints what it returned; known errors (`UserError`) become one line and an exit code."""

from __future__ import annotations

import functools
import inspect
import json
import sys
import typing
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from resdepth.config import OPTIONS, Role, SweepConfig, option_types, parse_list
from resdepth.errors import UserError
from resdepth.results import DIAGNOSTICS_COLUMNS

if TYPE_CHECKING:
    from resdepth.sweep import Plan

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
    "  resdepth diagnose results/quick",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    add_completion=False,
)
data_app = typer.Typer(help="Download and inspect the datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
# Logs and pipes get wide lines rather than tables squeezed to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
PANELS = {
    Role.GRID: "What to train",
    Role.RECIPE: "The recipe (He et al. 2016 §4.2)",
    Role.EXECUTION: "Execution",
}
# What `resdepth diagnose` measures by default, by the CSV each writes; `start` (training) only when asked.
MEASUREMENTS = tuple(name for name in DIAGNOSTICS_COLUMNS if name != "start")
LONG = 3600  # seconds: a sweep estimated longer than this gets a hint how to shorten it


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


Arch = Annotated[str, typer.Option(help=help_of("arch"))]
Depth = Annotated[str, typer.Option(help=help_of("depth"))]
Norm = Annotated[str, typer.Option(help=help_of("norm"))]
Activation = Annotated[str, typer.Option(help=help_of("activation"))]
DataDir = Annotated[str | None, typer.Option(help=help_of("data_dir"))]
Offline = Annotated[bool, typer.Option(help=help_of("offline"))]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
Results = Annotated[Path, typer.Argument(metavar="RESULTS", help="A results folder or its metrics.csv.")]


def _fmt_int(n: int) -> str:
    return f"{n:,}"


@app.command(
    epilog="Examples:\n\n  resdepth describe --arch plain,resnet --depth 20,56\n\n"
    "  resdepth describe --arch resnet --family imagenet --depth 18,34 --json\n\n"
    "  resdepth describe --arch vgg16 --input 224"
)
def describe(
    arch: Annotated[str, typer.Option(help="plain, resnet, lenet5, alexnet, vgg16 (comma-separated).")] = (
        "plain,resnet"
    ),
    depth: Depth = "20,32,44,56",
    family: Annotated[str, typer.Option(help=help_of("family"))] = "cifar",
    width: Annotated[int | None, typer.Option(help=help_of("width"))] = None,
    shortcut: Annotated[str | None, typer.Option(help=help_of("shortcut"))] = None,
    norm: Norm = "bn",
    activation: Activation = "relu",
    dataset: Annotated[str | None, typer.Option(help="Fix input shape and classes from a dataset.")] = None,
    input: Annotated[int | None, typer.Option("--input", help="Input size in pixels.")] = None,
    classes: Annotated[int | None, typer.Option(help="Number of classes.")] = None,
    as_json: AsJson = False,
) -> None:
    """Show each network's stages (or layers), output shapes, parameters and multiply-accumulates."""
    from resdepth.data.sources import SHAPES
    from resdepth.models import CLASSIC_DEPTHS, specs
    from resdepth.models.summary import summarize

    if dataset is not None and dataset not in SHAPES:
        raise UserError(f"unknown dataset {dataset!r}; valid: {', '.join(SHAPES)}")
    nets = specs(
        parse_list(arch, str, "--arch"),
        parse_list(depth, int, "--depth"),
        family=family,
        width=width,
        shortcut=shortcut,
        norm=norm,
        activation=activation,
        shape=SHAPES[dataset] if dataset else None,
        input_size=input,
        classes=classes,
    )
    summaries = [summarize(s) for s in nets]
    if as_json:
        print(json.dumps([s.to_json() for s in summaries], indent=2))
        return
    for s in summaries:
        sp = s.spec
        title = f"{sp.name}  ({sp.in_channels}x{sp.input_size}x{sp.input_size} in, {sp.num_classes} classes"
        title += (
            ")" if sp.arch in CLASSIC_DEPTHS else f", {sp.family} family, shortcut {sp.resolved_shortcut})"
        )
        table = Table(title=title, title_justify="left")
        table.add_column("part")
        for col in ("output HxWxC", "blocks", "params", "MACs"):
            table.add_column(col, justify="right")
        for part in s.parts:
            blocks = "" if part.blocks is None else str(part.blocks)
            table.add_row(part.name, part.shape_text, blocks, _fmt_int(part.params), _fmt_int(part.macs))
        table.add_section()
        table.add_row("total", "", "", _fmt_int(s.params), _fmt_int(s.macs), style="bold")
        console.print(table)


@data_app.command(
    epilog="Examples:\n\n  resdepth data download cifar10\n\n  resdepth data download mnist --data-dir ./data"
)
def download(
    name: Annotated[str, typer.Argument(help="cifar10, cifar100 or mnist.")],
    data_dir: DataDir = None,
) -> None:
    """Fetch a dataset's official archive, check its md5, and unpack it safely."""
    from resdepth.data.download import download as fetch
    from resdepth.data.sources import REMOTES
    from resdepth.data.store import resolve_root

    if name not in REMOTES:
        raise UserError(f"unknown dataset {name!r}; valid: {', '.join(REMOTES)}")
    folder = fetch(name, resolve_root(data_dir), show_progress=console.is_terminal)
    console.print(f"{name} is ready in {folder}", highlight=False)


@data_app.command(
    epilog="Examples:\n\n  resdepth data info cifar10\n\n  resdepth data info mnist --json\n\n"
    "  resdepth data info synthetic   (generated from a seed: for tests and machines with no network)"
)
def info(
    name: Annotated[str, typer.Argument(help="cifar10, cifar100, mnist or synthetic.")],
    data_dir: DataDir = None,
    offline: Annotated[bool, typer.Option(help="Never download; fail if the data is missing.")] = False,
    as_json: AsJson = False,
) -> None:
    """Where a dataset is, its split sizes, images per class, per-channel mean and std, class names."""
    from resdepth.data.store import load

    facts = load(name, data_dir, offline=offline).facts()
    if as_json:
        print(json.dumps(facts, indent=2))
        return
    table = Table(show_header=False, title=str(facts["name"]), title_justify="left")
    for key, value in facts.items():
        text = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        table.add_row(key.replace("_", " "), text)
    console.print(table)


@app.command(
    epilog="Examples:\n\n  resdepth sweep --depth 20,32,44,56\n\n"
    "  resdepth sweep --config experiments/quick.toml\n\n"
    "  resdepth sweep --config experiments/paper.toml --dry-run\n\n"
    "  resdepth sweep --arch resnet --depth 20,110 --seeds 0,1,2 --out results/r110"
)
@sweep_options
def sweep(
    given: dict[str, Any],
    config: Annotated[
        Path | None, typer.Option(help="TOML file with the same keys as these options.")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the plan and exit.")] = False,
    restart: Annotated[
        list[str] | None,
        typer.Option(
            help="Train these runs again from scratch: run ids (see --dry-run), or damaged (runs whose "
            "checkpoint cannot be read). Their rows move to RESULTS/discarded/."
        ),
    ] = None,
) -> None:
    """Train every (arch, depth, seed), log per-epoch errors to CSV, resume what was interrupted."""
    from resdepth import sweep as sweeping
    from resdepth.config import resolve
    from resdepth.progress import duration, reporter
    from resdepth.results import Status

    tokens = [t for item in restart or [] for t in parse_list(item, str, "--restart")]
    with sweeping.prepare(resolve(config, given), dry_run=dry_run, restart=tokens) as plan:
        if dry_run:
            _print_plan(plan)
            return
        for run_id in plan.repaired:
            console.print(f"{run_id}: status repaired (a killed sweep could not write it)", highlight=False)
        done = len(plan.runs) - len(plan.todo)
        summary = f"{len(plan.runs)} runs ({len(plan.todo)} to train, {done} done) on {plan.where}"
        if plan.estimate is not None:  # timed here, on this machine's device
            summary += f"; estimated {duration(plan.estimate)} one at a time"
        console.print(summary, highlight=False)
        if plan.estimate is not None and plan.estimate > LONG:
            console.print(
                "  that is long: shorten with --epochs, --train-subset or fewer --depth/--seeds, "
                "or see experiments/quick.toml",
                highlight=False,
            )
        report = reporter(console, len(plan.todo))
        try:
            outcomes = sweeping.run(plan, report)
        except KeyboardInterrupt:
            report.close()
            err.print(
                "interrupted: finished epochs are saved; run the same command again to resume",
                highlight=False,
            )
            raise typer.Exit(130) from None
        report.close()
    for o in outcomes:
        if o.status in (Status.FAILED, Status.DIVERGED):
            err.print(
                f"{o.cfg.name} seed {o.cfg.seed} ({o.cfg.run_id}) {o.status}: {o.error}",
                highlight=False,
                markup=False,
            )
    console.print(f"results in {plan.sweep.out}/metrics.csv and {plan.sweep.out}/runs.csv", highlight=False)
    if any(o.status is Status.FAILED for o in outcomes):
        raise typer.Exit(1)


def _print_plan(plan: Plan) -> None:
    from resdepth.models.resnet import layout

    table = Table(title=f"plan: {len(plan.runs)} runs into {plan.sweep.out}", title_justify="left")
    for col in ("run_id", "net", "seed", "dataset", "layout", "params", "epochs", "state"):
        table.add_column(col, no_wrap=col != "state")
    for p in plan.runs:
        c = p.cfg
        lay = (
            "fixed"
            if c.family == "-"
            else "x".join(str(b) for b in layout(c.family, c.depth, c.width).blocks)
        )
        table.add_row(
            c.run_id,
            c.name,
            str(c.seed),
            c.dataset,
            lay if lay == "fixed" else f"{lay} blocks",
            _fmt_int(p.params),
            str(c.epochs),
            p.state,
        )
    console.print(table)


Where = Annotated[
    list[str] | None,
    typer.Option(
        help="Only runs whose runs.csv column KEY has VALUE, e.g. --where dataset=cifar10 (repeatable)."
    ),
]
Reference = Annotated[
    Path | None,
    typer.Option(
        help="Compare with the runs of the same recipe in this folder, e.g. results/reference/quick."
    ),
]
IncludePartial = Annotated[
    bool, typer.Option(help="Put runs that did not complete into the means, marked *.")
]


@app.command(
    epilog="Examples:\n\n  resdepth plot results/quick\n\n  resdepth plot results/paper --paper --out paper.pdf\n\n"
    "  resdepth plot results/quick/metrics.csv --x epoch\n\n  resdepth plot results/mixed --where dataset=cifar10\n\n"
    "  resdepth plot results/course --metric test --reference results/reference/course"
)
def plot(
    results_path: Results,
    out: Annotated[Path | None, typer.Option(help="A folder, or a file name ending .png/.pdf/.svg.")] = None,
    x: Annotated[str, typer.Option(help="iteration (as in the paper) or epoch.")] = "iteration",
    paper: Annotated[bool, typer.Option(help="Mark He et al.'s Table 6 ResNet test errors.")] = False,
    where: Where = None,
    include_partial: IncludePartial = False,
    metric: Annotated[
        str, typer.Option(help="layers.png: final train (the course's picture) or test error.")
    ] = "train",
    reference: Reference = None,
) -> None:
    """Draw the error curves (He et al. Fig. 6), the degradation curve (error vs depth) and the course's
    picture (layers.png: training error against the number of layers) of each recipe in the folder and,
    when `resdepth diagnose` has run there, its figures."""
    from resdepth import plot as plotting

    for path in plotting.write_all(
        results_path,
        out,
        x=x,
        paper=paper,
        where=where or [],
        include_partial=include_partial,
        metric=metric,
        reference=reference,
    ):
        console.print(f"wrote {path}", highlight=False)


@app.command(
    epilog="Examples:\n\n  resdepth report results/quick\n\n  resdepth report results/paper --format markdown\n\n"
    "  resdepth report results/mixed --where dataset=cifar10 --include-partial\n\n"
    "  resdepth report results/quick --reference results/reference/quick"
)
def report(
    results_path: Results,
    format: Annotated[str, typer.Option("--format", help="table, markdown or csv.")] = "table",
    where: Where = None,
    include_partial: IncludePartial = False,
    reference: Reference = None,
) -> None:
    """Final and best errors per net (mean ± std over seeds) and a verdict, one table per recipe: runs
    that differ in anything but the seed are never averaged together."""
    import pandas as pd

    from resdepth import analysis, results
    from resdepth import report as reporting

    if format not in ("table", "markdown", "csv"):
        raise UserError(f"--format must be table, markdown or csv, got {format!r}")
    if results_path.is_dir():
        for run_id in results.repair_if_idle(results_path):
            err.print(f"{run_id}: status repaired (a killed sweep could not write it)", highlight=False)
    found = analysis.groups(analysis.load(results_path, where=where or []), include_partial)
    tables = [(g, reporting.table(g) if not g.metrics.empty else None) for g in found]
    if reference is not None:
        ref = analysis.load(reference)
        tables = [
            (g, reporting.with_reference(nets, analysis.matching(g, ref)) if nets is not None else None)
            for g, nets in tables
        ]
    if format == "csv":
        frames = [nets.assign(recipe=g.heading) for g, nets in tables if nets is not None]
        print(pd.concat(frames).to_csv(index=False) if frames else "", end="")
        return
    if format == "markdown":
        print("\n".join(reporting.markdown(g, nets) for g, nets in tables if nets is not None), end="")
        return
    for g, nets in tables:
        title = "final errors (mean ± std over seeds)" + (f": {g.heading}" if g.heading else "")
        if nets is None:
            console.print(
                f"{title}: no completed run yet (--include-partial shows the others)", highlight=False
            )
        else:
            header, body = reporting.rows(nets)
            table = Table(title=title, title_justify="left")
            for h in header:
                table.add_column(h, justify="left" if h == "net" else "right")
            for r in body:
                table.add_row(*r)
            console.print(table)
        for line in reporting.left_out(g):
            console.print(f"  left out: {line}", highlight=False)
        if nets is not None:
            console.print(reporting.verdict(nets), highlight=False)


@app.command(
    epilog="Examples:\n\n  resdepth bench\n\n  resdepth bench --arch resnet --depth 20,56,110 --seconds 20 --json"
)
def bench(
    arch: Annotated[str, typer.Option(help="plain, resnet (comma-separated).")] = "plain,resnet",
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


@app.command(
    epilog="Examples:\n\n  resdepth diagnose results/quick\n\n"
    "  resdepth diagnose --arch plain,resnet --depth 20,56 --norm bn,none --activation relu,sigmoid --what grads\n\n"
    "  resdepth diagnose results/quick --what lesion,identity --json\n\n"
    "  resdepth diagnose --arch plain,resnet --depth 56 --seeds 0,1,2,3,4 --what start --iterations 300"
)
def diagnose(
    results_path: Annotated[
        Path | None,
        typer.Argument(
            metavar="[RESULTS]", help="A results folder with checkpoints; omit to measure fresh nets."
        ),
    ] = None,
    arch: Annotated[str | None, typer.Option(help="Fresh nets: plain,resnet.")] = None,
    depth: Annotated[str | None, typer.Option(help="Fresh nets: depths, e.g. 20,56.")] = None,
    norm: Annotated[str, typer.Option(help="Fresh nets: bn and/or none, e.g. bn,none.")] = "bn",
    activation: Annotated[str, typer.Option(help="Fresh nets: relu, tanh and/or sigmoid.")] = "relu",
    seeds: Annotated[str, typer.Option(help="Fresh nets: seeds (each its own init).")] = "0",
    dataset: Annotated[str, typer.Option(help="Fresh nets: the images measured on.")] = "cifar10",
    data_dir: DataDir = None,
    test_subset: Annotated[
        int | None, typer.Option(help="Class-balanced N test images (default: the run's own, else all).")
    ] = None,
    what: Annotated[
        str,
        typer.Option(
            help="Measurements, comma-separated: " + ", ".join(MEASUREMENTS) + "; or start, the first "
            "--iterations of training (fresh nets, minutes a net)."
        ),
    ] = ",".join(MEASUREMENTS),
    iterations: Annotated[int, typer.Option(help="--what start: iterations to train each net.")] = 300,
    out: Annotated[
        Path | None,
        typer.Option(help="Fresh nets: folder for diagnostics/ and figures/ (default results/diagnose)."),
    ] = None,
    offline: Offline = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print every row as JSON.")] = False,
) -> None:
    """Measure why ResNets work: gradients per layer, layer responses, lesions, the identity argument,
    and the scale of the residual stream and the logits (at initialisation, and trained)."""
    from resdepth import diagnose as dg
    from resdepth.models import NetSpec

    if results_path is not None and (arch is not None or depth is not None or out is not None):
        raise UserError(
            "give a RESULTS folder or --arch/--depth (fresh nets), not both; --out is for fresh nets"
        )
    specs = [
        NetSpec(a, d, norm=n, activation=f)
        for n in parse_list(norm, str, "--norm")
        for f in parse_list(activation, str, "--activation")
        for a in parse_list(arch or "plain,resnet", str, "--arch")
        for d in parse_list(depth or "20,56", int, "--depth")
    ]

    def progress(text: str) -> None:
        if not as_json:
            err.print(f"measuring {text}", highlight=False)

    result = dg.run(
        results_path,
        specs=specs,
        seeds=parse_list(seeds, int, "--seeds"),
        what=parse_list(what, str, "--what"),
        iterations=iterations,
        dataset=dataset,
        data_dir=data_dir,
        test_subset=test_subset,
        out=out,
        offline=offline,
        progress=progress,
    )
    if as_json:
        print(json.dumps(result.tables, indent=2, default=str))
        return
    for name, summary in dg.summaries(result.tables).items():
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


def _warning_line(message: Warning | str, category: type[Warning], *_: object, **__: object) -> str:
    return f"warning: {message}\n"


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit code 2 (or their own)."""
    warnings.formatwarning = _warning_line  # type: ignore[assignment]
    try:
        app()
    except UserError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
