"""`resdepth describe`: stages, shapes, parameters and multiply-accumulates of each net."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from resdepth.cli.app import Activation, AsJson, Depth, Norm, _fmt_int, app, console, help_of
from resdepth.config import parse_list
from resdepth.errors import UserError
from resdepth.models import RESIDUAL_ARCHS


@app.command(
    epilog="Examples:\n\n  resdepth describe --arch plain,resnet --depth 20,56\n\n"
    "  resdepth describe --arch resnet --family imagenet --depth 18,34 --json\n\n"
    "  resdepth describe --arch vgg16 --input 224"
)
def describe(
    arch: Annotated[
        str, typer.Option(help="plain, resnet, lenet5, alexnet, vgg16 (comma-separated).")
    ] = ",".join(RESIDUAL_ARCHS),
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
    for option, value in (("--input", input), ("--classes", classes)):
        if value is not None and value < 1:
            raise UserError(f"{option} takes a positive number, got {value}")
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
