"""What every figure shares: the palette, where figures go, and how they are saved."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from resdepth.errors import UserError
from resdepth.files import atomic_write, inside
from resdepth.results import FIGURES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = (".png", ".pdf", ".svg")
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]


def new_figure(**kwargs: Any) -> Figure:
    """A figure tied to no GUI backend. matplotlib is imported here, when a figure is drawn, not when
    the command line starts (every command imports the modules that name the figures)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def figure_path(folder: Path, out: Path | None, name: str) -> Path:
    """Default RESULTS/figures/NAME.png; `--out x.pdf` gives x-NAME.pdf; `--out dir` gives dir/NAME.png."""
    if out is None:
        return inside(folder, FIGURES, f"{name}.png")
    if out.suffix:
        if out.suffix not in FORMATS:
            raise UserError(f"--out must end in {', '.join(FORMATS)} (or be a folder), got {out.name}")
        return out.with_name(f"{out.stem}-{name}{out.suffix}")
    return out / f"{name}.png"


def save(fig: Figure, path: Path) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Whole or not at all, and a link at `path` is replaced rather than written through.
        atomic_write(path, lambda f: fig.savefig(f, dpi=120, format=path.suffix[1:]))
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
