"""Tables and numbers of README.md and docs/ that come from the shipped results folders, rendered by
the code of `resdepth report` so that no number of a result is typed by hand: whole lines between
`<!-- results:NAME -->` and `<!-- /results -->`, and numbers inside a sentence between
`<!-- value:NAME -->` and `<!-- /value -->`. `make docs` rewrites them, and a test fails when a page
differs from what the results folders give today. `sweeps` renders those of the sweeps' folders,
`measurements` those of `resdepth diagnose`'s, `benches` those of `resdepth bench`'s records."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from resdepth.docblocks import benches, measurements, sweeps
from resdepth.docblocks.markdown import REFERENCE

__all__ = ["BLOCKS", "REFERENCE", "VALUES", "pages", "render"]

BLOCKS: dict[str, Callable[[Path], str]] = {**sweeps.BLOCKS, **measurements.BLOCKS, **benches.BLOCKS}
VALUES: dict[str, Callable[[Path], str]] = {**sweeps.VALUES, **measurements.VALUES, **benches.VALUES}
# A table's lines between its two comments, and a number between its two inside a sentence.
BLOCK = re.compile(r"(<!-- results:([\w-]+) -->\n)(.*?)(<!-- /results -->)", re.DOTALL)
VALUE = re.compile(r"(<!-- value:([\w-]+) -->)(.*?)(<!-- /value -->)")


def render(text: str, root: Path) -> str:
    """`text` with every results block and value rendered anew from the results folders under `root`."""

    def block(m: re.Match[str]) -> str:
        if m.group(2) not in BLOCKS:
            raise ValueError(f"no results block named {m.group(2)!r} (known: {', '.join(BLOCKS)})")
        return f"{m.group(1)}{BLOCKS[m.group(2)](root)}\n{m.group(4)}"

    def value(m: re.Match[str]) -> str:
        if m.group(2) not in VALUES:
            raise ValueError(f"no results value named {m.group(2)!r} (known: {', '.join(VALUES)})")
        return f"{m.group(1)}{VALUES[m.group(2)](root)}{m.group(4)}"

    return VALUE.sub(value, BLOCK.sub(block, text))


def pages(root: Path) -> list[Path]:
    """The pages that may hold results blocks: the README and every page of docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]
