"""The `resdepth` command: parse options, call the modules, turn known errors into one line."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from resdepth.errors import UserError

if TYPE_CHECKING:
    import torch

    from resdepth.step import Engine

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

DataDir = Annotated[
    str | None,
    typer.Option(help="Where datasets live (default: $RESDEPTH_DATA, else ~/.cache/resdepth)."),
]


Norm = Annotated[str, typer.Option(help="bn (the paper) or none: no normalisation, He init alone.")]
Activation = Annotated[str, typer.Option(help="relu (the paper), tanh or sigmoid.")]
Compile = Annotated[
    bool,
    typer.Option(
        "--compile", help="torch.compile the model: +30% on an H100, after about a minute of compiling."
    ),
]
CudaGraphs = Annotated[
    bool | None,
    typer.Option(
        "--cuda-graphs/--no-cuda-graphs", help="Replay each step from a CUDA graph (default: on CUDA)."
    ),
]
NormOrConfig = Annotated[str | None, typer.Option("--norm", help="bn (the paper) or none (He init alone).")]
ActivationOrConfig = Annotated[
    str | None, typer.Option("--activation", help="relu (the paper), tanh or sigmoid.")
]


def _engine(compile: bool, cuda_graphs: bool | None, device: torch.device, executor: str = "local") -> Engine:
    """The step engine; CUDA graphs asked for by name on a local device without CUDA is an error."""
    from resdepth.step import Engine

    if cuda_graphs and executor == "local" and device.type != "cuda":
        raise UserError(f"--cuda-graphs needs a CUDA device, and this machine trains on {device}")
    return Engine(compile=compile, cuda_graphs=cuda_graphs is not False)


def _fmt_int(n: int) -> str:
    return f"{n:,}"


@app.command(
    epilog="Examples:\n\n  resdepth describe --arch plain,resnet --depth 20,56\n\n"
    "  resdepth describe --arch resnet --family imagenet --depth 18,34 --json\n\n"
    "  resdepth describe --arch vgg16 --input 224"
)
def describe(
    arch: Annotated[
        str, typer.Option(help="plain, resnet, lenet5, alexnet, vgg16 (comma-separated).")
    ] = "plain,resnet",
    depth: Annotated[str, typer.Option(help="Depths for plain/resnet, e.g. 20,32,44,56.")] = "20,32,44,56",
    family: Annotated[str, typer.Option(help="cifar (He et al. §4.2) or imagenet (Table 1).")] = "cifar",
    width: Annotated[
        int | None, typer.Option(help="Channels of the first stage (cifar 16, imagenet 64).")
    ] = None,
    shortcut: Annotated[
        str | None, typer.Option(help="A: zero-pad identity, B: projection where shapes change.")
    ] = None,
    norm: Norm = "bn",
    activation: Activation = "relu",
    dataset: Annotated[str | None, typer.Option(help="Fix input shape and classes from a dataset.")] = None,
    input: Annotated[int | None, typer.Option("--input", help="Input size in pixels.")] = None,
    classes: Annotated[int | None, typer.Option(help="Number of classes.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show each network's stages (or layers), output shapes, parameters and multiply-accumulates."""
    from resdepth.config import parse_list
    from resdepth.data.sources import SHAPES
    from resdepth.models import CLASSIC_DEPTHS, ORIGINAL_INPUT, NetSpec, check_arch, validate
    from resdepth.models.summary import summarize

    archs = parse_list(arch, str, "--arch")
    for a in archs:
        check_arch(a)
    depths = parse_list(depth, int, "--depth")
    if dataset is not None and dataset not in SHAPES:
        raise UserError(f"unknown dataset {dataset!r}; valid: {', '.join(SHAPES)}")
    specs = []
    for a in archs:
        if dataset is not None:
            channels, size, n_classes = SHAPES[dataset]
        elif a in CLASSIC_DEPTHS:
            channels, size = ORIGINAL_INPUT[a]
            n_classes = 10 if a == "lenet5" else 1000
        else:
            channels, size, n_classes = SHAPES["cifar10"]
        size = input or size
        n_classes = classes or n_classes
        for d in [CLASSIC_DEPTHS[a]] if a in CLASSIC_DEPTHS else depths:
            spec = NetSpec(a, d, family, width, shortcut, n_classes, channels, size, norm, activation)
            validate(spec)
            specs.append(spec)
    summaries = [summarize(s) for s in specs]
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
        table.add_column("output HxWxC", justify="right")
        table.add_column("blocks", justify="right")
        table.add_column("params", justify="right")
        table.add_column("MACs", justify="right")
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
    root = resolve_root(data_dir)
    folder = fetch(name, root, show_progress=console.is_terminal)
    console.print(f"{name} is ready in {folder}", highlight=False)


@data_app.command(
    epilog="Examples:\n\n  resdepth data info cifar10\n\n  resdepth data info mnist --json\n\n"
    "  resdepth data info synthetic   (generated from a seed: for tests and machines with no network)"
)
def info(
    name: Annotated[str, typer.Argument(help="cifar10, cifar100, mnist or synthetic.")],
    data_dir: DataDir = None,
    offline: Annotated[bool, typer.Option(help="Never download; fail if the data is missing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Where a dataset is, its split sizes, images per class, per-channel mean and std, class names."""
    from resdepth.data.store import load

    d = load(name, data_dir, offline=offline)
    facts: dict[str, Any] = {
        "name": d.name,
        "source": d.source,
        "train": len(d.train_y),
        "test": len(d.test_y),
        "shape": [d.channels, d.size, d.size],
        "train_per_class": d.per_class(d.train_y),
        "test_per_class": d.per_class(d.test_y),
        "mean": [round(m, 4) for m in d.mean],
        "std": [round(s, 4) for s in d.std],
        "classes": list(d.classes),
    }
    if as_json:
        print(json.dumps(facts, indent=2))
        return
    table = Table(show_header=False, title=f"{d.name}", title_justify="left")
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
def sweep(
    config: Annotated[
        Path | None, typer.Option(help="TOML file with the same keys as these options.")
    ] = None,
    arch: Annotated[str | None, typer.Option(help="plain,resnet (also lenet5, vgg16).")] = None,
    depth: Annotated[str | None, typer.Option(help="Depths, e.g. 20,32,44,56.")] = None,
    family: Annotated[str | None, typer.Option(help="cifar or imagenet.")] = None,
    width: Annotated[int | None, typer.Option(help="Channels of the first stage.")] = None,
    shortcut: Annotated[str | None, typer.Option(help="A or B.")] = None,
    norm: NormOrConfig = None,
    activation: ActivationOrConfig = None,
    dataset: Annotated[str | None, typer.Option(help="cifar10, cifar100, mnist, synthetic.")] = None,
    data_dir: DataDir = None,
    train_subset: Annotated[
        int | None, typer.Option(help="Class-balanced subset of N training images.")
    ] = None,
    val_split: Annotated[int | None, typer.Option(help="Hold out N training images for validation.")] = None,
    test_subset: Annotated[
        int | None, typer.Option(help="Evaluate on a class-balanced N test images.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Training length in epochs.")] = None,
    iterations: Annotated[
        int | None, typer.Option(help="Training length in iterations (default 64000).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Mini-batch size (default 128).")] = None,
    lr: Annotated[float | None, typer.Option(help="Initial learning rate (default 0.1).")] = None,
    momentum: Annotated[float | None, typer.Option(help="SGD momentum (default 0.9).")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Weight decay (default 1e-4).")] = None,
    milestones: Annotated[
        str | None, typer.Option(help="Fractions of training where lr /= 10 (0.5,0.75).")
    ] = None,
    warmup: Annotated[
        str | None,
        typer.Option(help="lr/10 until train error < 80% (<= 400 its): auto (depth >= 110), always, none."),
    ] = None,
    seeds: Annotated[str | None, typer.Option(help="Seeds, e.g. 0,1,2.")] = None,
    precision: Annotated[
        str | None,
        typer.Option(help="auto (default: bf16 where the hardware runs it fast, else fp32), fp32 or bf16."),
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or mps.")] = None,
    out: Annotated[str | None, typer.Option(help="Results folder (default results/sweep).")] = None,
    offline: Annotated[bool, typer.Option(help="Never download data.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Print the plan and exit.")] = False,
    fail_fast: Annotated[bool, typer.Option(help="Stop at the first failed run.")] = False,
    jobs: Annotated[
        str,
        typer.Option(
            help="Runs at a time on this machine, each its own process; auto: 1 per GPU or per 4 CPUs."
        ),
    ] = "1",
    threads: Annotated[
        int | None, typer.Option(help="CPU threads per run (default: this machine's, divided by --jobs).")
    ] = None,
    runs_per_gpu: Annotated[int, typer.Option(help="Runs sharing one GPU under --jobs.")] = 1,
    executor: Annotated[str, typer.Option(help="local (this machine) or ray (a Ray cluster).")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster to join (default: $RAY_ADDRESS, else a local instance).")
    ] = None,
    cpus_per_run: Annotated[float, typer.Option(help="Ray: CPUs each run asks for.")] = 1.0,
    gpus_per_run: Annotated[
        float | None,
        typer.Option(help="Ray: GPUs each run asks for, e.g. 0.5 (default 1 if the cluster has GPUs)."),
    ] = None,
    compile: Compile = False,
    cuda_graphs: CudaGraphs = None,
) -> None:
    """Train every (arch, depth, seed), log per-epoch errors to CSV, resume what was interrupted."""
    from resdepth import results
    from resdepth.config import resolve
    from resdepth.executors import make_executor
    from resdepth.models.resnet import layout
    from resdepth.progress import reporter
    from resdepth.sweep import Sweep, duration, run_sweep
    from resdepth.train import pick_device, resolve_precision

    given = dict(
        arch=arch, depth=depth, family=family, width=width, shortcut=shortcut, norm=norm,
        activation=activation, dataset=dataset,
        data_dir=data_dir, train_subset=train_subset, val_split=val_split, test_subset=test_subset,
        epochs=epochs,
        iterations=iterations, batch_size=batch_size, lr=lr, momentum=momentum,
        weight_decay=weight_decay, milestones=milestones, warmup=warmup, seeds=seeds,
        precision=precision, device=device, out=out,
    )  # fmt: skip
    cfg = resolve(config, given)
    dev = pick_device(cfg.device)
    cfg.precision = resolve_precision(cfg.precision, dev)  # what ran is what run_id and sweep.toml record
    out_dir = Path(cfg.out)
    if not dry_run:
        results.check_folder(out_dir)
    sw = Sweep(cfg, offline=offline)
    planned = sw.plan()
    todo = [p for p in planned if not p.finished]
    if dry_run:
        table = Table(title=f"plan: {len(planned)} runs into {out_dir}", title_justify="left")
        for col in ("run_id", "net", "seed", "dataset", "layout", "params", "epochs", "state"):
            table.add_column(col, no_wrap=col != "state")
        for p in planned:
            c = p.cfg
            lay = (
                "fixed"
                if c.family == "-"
                else "x".join(str(b) for b in layout(c.family, c.depth, c.width).blocks) + " blocks"
            )
            table.add_row(c.run_id, c.name, str(c.seed), c.dataset, lay, _fmt_int(p.params),
                          str(c.epochs), p.state)  # fmt: skip
        console.print(table)
        return
    engine = _engine(compile, cuda_graphs, dev, executor)
    pool = make_executor(executor, dev, cfg.device, lambda c: sw.split(c.dataset, c.seed), jobs, threads,
                         runs_per_gpu, address, cpus_per_run, gpus_per_run)  # fmt: skip
    (out_dir / "sweep.toml").write_text(cfg.to_toml())
    where = f"Ray ({pool.at_once} at a time)" if executor == "ray" else (
        f"{dev}, {jobs} at a time" if jobs != "1" else str(dev)
    )  # fmt: skip
    summary = f"{len(planned)} runs ({len(todo)} to train, {len(planned) - len(todo)} done) on {where}"
    if executor == "local":  # timed here, on this machine's device
        estimate = sw.estimate_seconds(planned, dev, engine)
        summary += f"; estimated {duration(estimate)} one at a time"
    console.print(summary, highlight=False)
    if executor == "local" and estimate > 3600:
        console.print(
            "  that is long: shorten with --epochs, --train-subset or fewer --depth/--seeds, "
            "or see experiments/quick.toml",
            highlight=False,
        )
    report = reporter(console, len(todo))
    try:
        outcomes = run_sweep(sw, planned, pool, report, fail_fast=fail_fast, engine=engine)
    except KeyboardInterrupt:
        report.close()
        err.print(
            "interrupted: finished epochs are saved; run the same command again to resume",
            highlight=False,
        )
        raise typer.Exit(130) from None
    report.close()
    bad = [(c, s, e) for c, s, e in outcomes if s in ("failed", "diverged")]
    for c, s, e in bad:
        err.print(f"{c.name} seed {c.seed} ({c.run_id}) {s}: {e}", highlight=False, markup=False)
    console.print(f"results in {out_dir}/metrics.csv and {out_dir}/runs.csv", highlight=False)
    if any(s == "failed" for _, s, _ in outcomes):
        raise typer.Exit(1)


@app.command(
    epilog="Examples:\n\n  resdepth plot results/quick\n\n  resdepth plot results/paper --paper --out paper.pdf\n\n"
    "  resdepth plot results/quick/metrics.csv --x epoch"
)
def plot(
    results_path: Annotated[
        Path, typer.Argument(metavar="RESULTS", help="A results folder or its metrics.csv.")
    ],
    out: Annotated[Path | None, typer.Option(help="A folder, or a file name ending .png/.pdf/.svg.")] = None,
    x: Annotated[str, typer.Option(help="iteration (as in the paper) or epoch.")] = "iteration",
    paper: Annotated[bool, typer.Option(help="Mark He et al.'s Table 6 ResNet test errors.")] = False,
) -> None:
    """Draw the error curves (He et al. Fig. 6), the degradation curve (error vs depth) and, when
    `resdepth diagnose` has run there, its figures."""
    from resdepth import analysis, plot_diagnostics, results
    from resdepth import plot as plotting

    diagnostics = results.read_diagnostics(results_path) if results_path.is_dir() else {}
    written = []
    if not diagnostics or not results_path.is_dir() or (results_path / results.METRICS).is_file():
        written += plotting.write(analysis.load(results_path), out, x, paper)
    written += plot_diagnostics.write(results_path, diagnostics, out)
    for path in written:
        console.print(f"wrote {path}", highlight=False)


@app.command(
    epilog="Examples:\n\n  resdepth report results/quick\n\n  resdepth report results/paper --format markdown"
)
def report(
    results_path: Annotated[
        Path, typer.Argument(metavar="RESULTS", help="A results folder or its metrics.csv.")
    ],
    format: Annotated[str, typer.Option("--format", help="table, markdown or csv.")] = "table",
) -> None:
    """Final and best errors per architecture and depth (mean ± std over seeds), and a verdict."""
    from resdepth import analysis
    from resdepth import report as reporting

    if format not in ("table", "markdown", "csv"):
        raise UserError(f"--format must be table, markdown or csv, got {format!r}")
    nets = reporting.table(analysis.load(results_path))
    if format == "csv":
        print(nets.to_csv(index=False), end="")
        return
    if format == "markdown":
        print(reporting.markdown(nets), end="")
        return
    header, body = reporting.rows(nets)
    table = Table(title="final errors (mean ± std over seeds)", title_justify="left")
    for h in header:
        table.add_column(h, justify="left" if h == "net" else "right")
    for r in body:
        table.add_row(*r)
    console.print(table)
    console.print(reporting.verdict(nets), highlight=False)


@app.command(
    epilog="Examples:\n\n  resdepth bench\n\n  resdepth bench --arch resnet --depth 20,56,110 --seconds 20 --json"
)
def bench(
    arch: Annotated[str, typer.Option(help="plain, resnet (comma-separated).")] = "plain,resnet",
    depth: Annotated[str, typer.Option(help="Depths, e.g. 20,56,110.")] = "20,56",
    norm: Norm = "bn",
    activation: Activation = "relu",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    precision: Annotated[
        str, typer.Option(help="auto, fp32 or bf16 (resdepth's loop; the textbook loop is fp32).")
    ] = "auto",
    seconds: Annotated[float, typer.Option(help="Timed seconds per loop and net (after warm-up).")] = 10.0,
    compile: Compile = False,
    cuda_graphs: CudaGraphs = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Training images/s of resdepth's loop vs the textbook DataLoader loop, and projected paper times."""
    import torch

    from resdepth.benchmarks.bench import device_name, measure, paper_run_seconds, paper_sweep_seconds
    from resdepth.config import check_precision, parse_list
    from resdepth.models import NetSpec, validate
    from resdepth.sweep import duration
    from resdepth.train import pick_device, resolve_precision

    archs = parse_list(arch, str, "--arch")
    depths = parse_list(depth, int, "--depth")
    for a in archs:
        if a not in ("plain", "resnet"):
            raise UserError(f"bench measures plain and resnet nets, not {a!r}")
        for d in depths:
            validate(NetSpec(a, d, norm=norm, activation=activation))
    check_precision(precision)
    if not seconds > 0:
        raise UserError(f"--seconds must be positive, got {seconds}")
    dev = pick_device(device)
    prec = resolve_precision(precision, dev)
    engine = _engine(compile, cuda_graphs, dev)
    measured = [
        measure(a, d, dev, prec, seconds, norm=norm, activation=activation, engine=engine)
        for a in archs
        for d in depths
    ]
    paper = {k: paper_sweep_seconds(measured, k) for k in ("resdepth", "textbook")}
    hardware = device_name(dev)
    if as_json:
        rows = [{**m.__dict__, "ratio": m.ratio, "epochs_164_seconds": paper_run_seconds(m.resdepth),
                 "textbook_epochs_164_seconds": paper_run_seconds(m.textbook)} for m in measured]  # fmt: skip
        print(json.dumps({"hardware": hardware, "torch": torch.__version__, "runs": rows,
                          "paper_sweep_seconds": paper}, indent=2))  # fmt: skip
        return
    table = Table(title=f"training throughput, batch 128, {hardware}", title_justify="left")
    for col in ("model", "device", "precision", "engine", "resdepth img/s", "textbook img/s", "ratio",
                "164 epochs", "164 epochs (textbook)"):  # fmt: skip
        table.add_column(col, justify="left" if col == "model" else "right")
    for m in measured:
        table.add_row(m.label, m.device, m.precision, m.engine, f"{m.resdepth:,.0f}", f"{m.textbook:,.0f}",
                      f"{m.ratio:.2f}x", duration(paper_run_seconds(m.resdepth)),
                      duration(paper_run_seconds(m.textbook)))  # fmt: skip
    console.print(table)
    console.print(
        f"experiments/paper.toml (164 epochs per net): about {duration(paper['resdepth'] or 0)} with resdepth, "
        f"{duration(paper['textbook'] or 0)} with the textbook loop",
        highlight=False,
    )


@app.command(
    epilog="Examples:\n\n  resdepth diagnose results/quick\n\n"
    "  resdepth diagnose --arch plain,resnet --depth 20,56 --norm bn,none --activation relu,sigmoid --what grads\n\n"
    "  resdepth diagnose results/quick --what lesion,identity --json"
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
    what: Annotated[str, typer.Option(help="grads, responses, lesion, identity (comma-separated).")] = (
        "grads,responses,lesion,identity"
    ),
    out: Annotated[
        Path | None,
        typer.Option(help="Fresh nets: folder for diagnostics/ and figures/ (default results/diagnose)."),
    ] = None,
    offline: Annotated[bool, typer.Option(help="Never download data.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print every row as JSON.")] = False,
) -> None:
    """Measure why ResNets work: gradients per layer, layer responses, lesions, the identity argument."""
    from resdepth import diagnose as dg
    from resdepth import plot_diagnostics, results
    from resdepth.config import parse_list
    from resdepth.data.store import load
    from resdepth.models import NetSpec

    wanted = parse_list(what, str, "--what")
    for w in wanted:
        if w not in dg.WHAT:
            raise UserError(f"--what takes {', '.join(dg.WHAT)}; got {w!r}")
    if test_subset is not None and test_subset <= 0:
        raise UserError(f"--test-subset must be a positive number, got {test_subset}")

    def progress(text: str) -> None:
        if not as_json:
            err.print(f"measuring {text}", highlight=False)

    if results_path is not None:
        if arch is not None or depth is not None or out is not None:
            raise UserError(
                "give a RESULTS folder or --arch/--depth (fresh nets), not both; --out is for fresh nets"
            )
        if not results_path.is_dir():
            raise UserError(f"{results_path} is not a folder; give a results folder a sweep wrote")
        folder = results_path
        tables = dg.diagnose_results(folder, wanted, data_dir, test_subset, progress)
    else:
        specs = [
            NetSpec(a, d, norm=n, activation=f)
            for n in parse_list(norm, str, "--norm")
            for f in parse_list(activation, str, "--activation")
            for a in parse_list(arch or "plain,resnet", str, "--arch")
            for d in parse_list(depth or "20,56", int, "--depth")
        ]
        nets_seeds = parse_list(seeds, int, "--seeds")
        for spec in specs:
            dg.fresh(spec, 0)  # every net is checked before any data is loaded
        data = load(dataset, data_dir, offline=offline).split(None, None, 0, test_subset)
        folder = out or Path("results/diagnose")
        results.check_folder(folder)
        tables = dg.diagnose_fresh(specs, nets_seeds, wanted, data, progress)
    written = [results.write_diagnostics(folder, name, rows) for name, rows in tables.items()]
    frames = {name: frame for name, frame in results.read_diagnostics(folder).items() if name in tables}
    written += plot_diagnostics.write(folder, frames)
    if as_json:
        print(json.dumps(tables, indent=2, default=str))
        return
    for name, summary in dg.summaries(tables).items():
        table = Table(title=name, title_justify="left")
        table.add_column("net")
        table.add_column("state")
        for col in summary.columns:
            table.add_column(str(col), justify="right")
        for key, row in zip(summary.index, summary.to_numpy(float), strict=True):
            table.add_row(*(str(k) for k in key), *(f"{v:.3g}" for v in row))
        console.print(table)
    for path in written:
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
