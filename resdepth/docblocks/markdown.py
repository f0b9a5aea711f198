"""Where the reference results live and how the generated tables and numbers are written: a
table's header, a net's name, a figure's digits, a list of changes; shared by `sweeps` and
`measurements` so that every page writes them alike."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

REFERENCE = Path("results") / "reference"


def head(*names: str) -> list[str]:
    """A markdown table's first two lines: its header and the separator under every column."""
    return ["| " + " | ".join(names) + " |", "|---" * len(names) + "|"]


def net_name(arch: str, depth: object) -> str:
    """`plain-20`, `ResNet-56`: as the report and the figures name a net."""
    return f"{'ResNet' if arch == 'resnet' else 'plain'}-{depth}"


def figure(value: float) -> str:
    """Two significant digits below 0.1, then two decimals, then whole numbers from 100: 0.0061,
    0.30, 3.02, 1,051."""
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.2g}"


def listed(values: Iterable[float], spec: str = "+.1f") -> str:
    """`+1.0, -1.8 and -3.9`."""
    items = [format(v, spec) for v in values]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def span(values: Iterable[float], decimals: int = 1) -> str:
    """`10.7 to 16.2`: the smallest and largest size of a change, whichever its sign."""
    sizes = [abs(v) for v in values]
    return f"{min(sizes):.{decimals}f} to {max(sizes):.{decimals}f}"


def points(change: float) -> str:
    return f"{abs(change):.1f} points {'below' if change < 0 else 'above'}"
