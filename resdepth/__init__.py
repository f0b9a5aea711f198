"""resdepth: reproduce He et al. 2016's degradation experiment (plain vs residual nets by depth).

The command line is `resdepth`; a notebook calls the same work directly:

    import resdepth
    resdepth.sweep("quick", out="results/quick", seeds=[0, 1])   # a shipped config, or a TOML path
    for recipe in resdepth.report("results/quick"):
        print(recipe.nets, recipe.verdict)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resdepth.config import SweepConfig
    from resdepth.executors import Outcome
    from resdepth.tables import Recipe

from resdepth.version import __version__

__all__ = ["__version__", "report", "sweep"]


def sweep(config: str | Path | SweepConfig | None = None, **options: Any) -> list[Outcome]:
    """Train every run of a sweep that is not done yet, resuming partial ones, as `resdepth sweep`
    does: `config` a shipped config's name, a TOML file or a `SweepConfig`, `options` any sweep
    option by its field name (`depth=[20, 56]`, `out="results/mine"`), overriding the config."""
    import dataclasses

    from rich.console import Console

    from resdepth import planner
    from resdepth.config import OPTIONS, SweepConfig, resolve
    from resdepth.errors import UserError

    if unknown := sorted(set(options) - set(OPTIONS)):
        raise UserError(f"unknown sweep option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}")
    if isinstance(config, SweepConfig):  # its values are checked as the command line's would be
        given = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        cfg = resolve(None, {**given, **options})
    else:
        cfg = resolve(Path(config) if config is not None else None, options)
    with planner.prepare(cfg) as plan:
        return planner.run_shown(plan, Console())


def report(
    folder: str | Path,
    where: list[str] | None = None,
    include_partial: bool = False,
    reference: str | Path | None = None,
) -> list[Recipe]:
    """Each recipe of a results folder: its table of nets (mean ± std over seeds) and its verdict."""
    from resdepth import tables

    return tables.report(Path(folder), where, include_partial, Path(reference) if reference else None)
