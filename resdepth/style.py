"""What every figure shares: the palette, where figures go, and how they are saved."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from resdepth.errors import UserError
from resdepth.files import inside
from resdepth.results import FIGURES

FORMATS = (".png", ".pdf", ".svg")
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]


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
        fig.savefig(path, dpi=120)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
