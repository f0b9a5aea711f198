"""`resdepth plot` and `resdepth report`: figures and tables of a results folder, one per recipe."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from resdepth.cli.app import Results, app, console
from resdepth.errors import UserError

if TYPE_CHECKING:
    from resdepth.tables import Recipe

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
    "  resdepth plot results/mixed --compare-recipes\n\n"
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
    compare_recipes: Annotated[
        bool,
        typer.Option(help="Also draw layers-recipes.png: every recipe's means on shared axes, a line each."),
    ] = False,
) -> None:
    """Draw the error curves, the degradation curve and the course's layers picture of each recipe.

    One set per recipe in the folder:
    curves.png: error against iterations (He et al. Fig. 6);
    depth.png: final errors against depth;
    layers.png: the course's picture, training error against the number of layers;
    and the diagnostics figures where `resdepth diagnose` has run.
    Recipes share axes only in layers-recipes.png, with --compare-recipes."""
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
        compare_recipes=compare_recipes,
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
    """Final and best errors per net (mean ± std over seeds) and a verdict, one table per recipe.

    Runs that differ in anything but the seed are never averaged together."""
    import pandas as pd

    from resdepth import tables

    if format not in ("table", "markdown", "csv"):
        raise UserError(f"--format must be table, markdown or csv, got {format!r}")
    recipes = tables.report(results_path, where, include_partial, reference)
    if format != "table" and all(r.nets is None for r in recipes):
        raise UserError(
            f"nothing to report in {results_path}: no run is known to have completed (`--format table` "
            "lists them); --include-partial reports them"
        )
    if format == "csv":
        frames = [
            r.nets.assign(recipe=r.group.heading, reference=r.reference)
            for r in recipes
            if r.nets is not None
        ]
        print(pd.concat(frames).to_csv(index=False) if frames else "", end="")
    elif format == "markdown":
        parts = [
            tables.markdown(r.group, r.nets) + (f"\n- {_across(r.reference)}\n" if r.reference else "")
            for r in recipes
            if r.nets is not None
        ]
        print("\n".join(parts), end="")
    else:
        for r in recipes:
            _print_recipe(r)


def _print_recipe(recipe: Recipe) -> None:
    """One recipe's table, the runs its means leave out, how the reference differs, the verdict."""
    from resdepth import tables as reporting

    g, nets, note = recipe.group, recipe.nets, recipe.reference
    title = "final errors (mean ± std over seeds)" + (f": {g.heading}" if g.heading else "")
    if nets is None:
        console.print(
            f"{title}: no run known to have completed (--include-partial shows the others)", highlight=False
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
    if note:
        console.print(f"  {_across(note)}", highlight=False)
    if nets is not None:
        console.print(recipe.verdict, highlight=False)
        if seeds := reporting.per_seed(g):
            console.print(seeds, highlight=False)


def _across(note: str) -> str:
    return (
        f"compared with the {note}: the one difference a reference may have "
        "(bf16 matched fp32 within the seed spread)"
    )
