"""`resdepth sweep`: its options are `SweepConfig`'s fields; the work is `planner.prepare` (the plan) and
`planner.run_shown` (training it, shown as it goes)."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from resdepth.cli.app import _fmt_int, app, console, err, sweep_options
from resdepth.config import parse_list, shipped_names
from resdepth.models import NOT_APPLICABLE

if TYPE_CHECKING:
    from resdepth.planner import Plan

LONG = 3600  # seconds: a sweep estimated longer than this gets a hint how to shorten it


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system's time limit, `kill`, a service stopping), taken as Ctrl-C is: the
    runs in training are marked interrupted and the exit code is 143. Without it the process died
    on the spot and runs.csv said `running` until the next sweep repaired it."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


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
        Path | None,
        typer.Option(
            help="TOML file with the same keys as these options, or a shipped one by name: "
            + ", ".join(shipped_names())
            + "."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the plan and exit.")] = False,
    restart: Annotated[
        list[str] | None,
        typer.Option(
            help="Train these runs again from scratch: run ids (see --dry-run), or damaged (runs whose "
            "checkpoint cannot be used: unreadable, missing, or not matching the logged rows). Their rows move to RESULTS/discarded/."
        ),
    ] = None,
) -> None:
    """Train every (arch, depth, seed), log per-epoch errors to CSV, resume what was interrupted."""
    from resdepth import planner
    from resdepth.config import resolve
    from resdepth.results import Status

    tokens = [t for item in restart or [] for t in parse_list(item, str, "--restart")]
    with planner.prepare(resolve(config, given), dry_run=dry_run, restart=tokens) as plan:
        if dry_run:
            _print_plan(plan)
            _print_other_precision(plan)
            return
        _print_other_precision(plan)
        _print_start(plan)
        before = signal.signal(signal.SIGTERM, _terminate)
        try:
            outcomes = planner.run_shown(plan, console)
        except KeyboardInterrupt as stop:
            err.print(
                "interrupted: finished epochs are saved; run the same command again to resume",
                highlight=False,
            )
            raise typer.Exit(143 if isinstance(stop, Terminated) else 130) from None
        finally:
            signal.signal(signal.SIGTERM, before)
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


def _print_start(plan: Plan) -> None:
    """What the sweep repaired before it starts, and what it will do."""
    from resdepth.progress import duration

    for run_id, rows in plan.restored.items():
        console.print(
            f"{run_id}: {rows} row(s) restored from its checkpoint (a killed sweep had not written them)",
            highlight=False,
        )
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


def _print_other_precision(plan: Plan) -> None:
    others = plan.sweep.in_other_precision(plan.runs)  # before anything trains
    for p in plan.runs:
        if other := others.get(p.cfg.run_id):
            err.print(
                f"note: {p.cfg.name} seed {p.cfg.seed} stands partly trained here in {other.precision} "
                f"({other.run_id}); this sweep trains it in {p.cfg.precision} ({p.cfg.run_id}) from scratch. "
                f"`--precision {other.precision}` continues it instead",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )


def _print_plan(plan: Plan) -> None:
    from resdepth.models.resnet import layout

    table = Table(title=f"plan: {len(plan.runs)} runs into {plan.sweep.out}", title_justify="left")
    for col in ("run_id", "net", "seed", "dataset", "layout", "params", "epochs", "state"):
        table.add_column(col, no_wrap=col != "state")
    for p in plan.runs:
        c = p.cfg
        lay = (
            "fixed"
            if c.family == NOT_APPLICABLE
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
