"""`resdepth data download` and `resdepth data info`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from resdepth.cli.app import AsJson, DataDir, console, data_app
from resdepth.errors import UserError


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
