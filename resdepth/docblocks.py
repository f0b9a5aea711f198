"""Tables and lines of README.md and docs/ that come from the shipped results folders, rendered by
the code of `resdepth report` between `<!-- results:NAME -->` and `<!-- /results -->`, so that no
number of a result is typed by hand: `make docs` rewrites them, and a test fails when a page
differs from what the results folders give today."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from resdepth import results, tables
from resdepth.analysis import final_rows
from resdepth.progress import duration

REFERENCE = Path("results") / "reference"
# He et al.'s Table 6 and published reproductions of the full recipe (one run; five seeds trained
# on a 45k/5k split; one run), test error in %: what the paper table sets beside our runs.
PUBLISHED = {
    ("resnet", 20): ("8.75", "8.04; 8.51 ± 0.22; 8.23"),
    ("plain", 20): ("— (Fig. 6 only)", "9.69; 9.78 ± 0.13; 9.35"),
    ("resnet", 56): ("6.97", "7.40 ± 0.27 (five seeds)"),
    ("plain", 56): ("— (Fig. 6 only)", "12.95 ± 0.22 (five seeds)"),
}
BLOCK = re.compile(r"(<!-- results:([\w-]+) -->\n)(.*?)(<!-- /results -->)", re.DOTALL)


def _recipe(root: Path, name: str) -> tables.Recipe:
    (recipe,) = tables.report(root / REFERENCE / name)
    return recipe


def course_means(root: Path) -> str:
    """Final errors by layers, plain and ResNet, mean ± std over seeds."""
    nets = _recipe(root, "course").nets
    assert nets is not None
    by = nets.set_index(["arch", "depth"])
    lines = [
        "| layers | plain, train | ResNet, train | plain, test | ResNet, test |",
        "|---|---|---|---|---|",
    ]
    for depth in sorted(set(nets["depth"])):
        cells = [
            tables.plus_minus(
                by.loc[(a, depth), f"{m}_mean"], by.loc[(a, depth), f"{m}_std"], by.loc[(a, depth), "seeds"]
            )
            for m in ("final_train_error", "final_test_error")
            for a in ("plain", "resnet")
        ]
        lines.append(f"| {depth} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def course_seeds(root: Path) -> str:
    """Final training error of every net in every seed."""
    finals = final_rows(_recipe(root, "course").group.metrics)
    errors = finals.pivot_table(index=["arch", "depth"], columns="seed", values="train_error")
    seeds = list(errors.columns)
    lines = ["| net | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---" * (len(seeds) + 1) + "|"]
    for row in errors.reset_index().to_dict("records"):
        name = f"{'ResNet' if row['arch'] == 'resnet' else 'plain'}-{row['depth']}"
        lines.append(f"| {name} | " + " | ".join(f"{row[s]:.2f}" for s in seeds) + " |")
    return "\n".join(lines)


def course_verdict(root: Path) -> str:
    """What `resdepth report` concludes of the course, and its line per seed."""
    recipe = _recipe(root, "course")
    return (
        f"`resdepth report results/reference/course`: *{recipe.verdict}*; *{tables.per_seed(recipe.group)}*."
    )


def runs_table(root: Path, name: str, published: dict[tuple[str, int], tuple[str, str]] | None = None) -> str:
    """Every run of a reference folder, completed first: its final errors (beside Table 6 and the
    reproductions, for `published`), and what it cost: precision, processor, threads, wall time and
    the median speed of its epochs."""
    folder = root / REFERENCE / name
    runs = sorted(
        results.read_runs(folder).values(),
        key=lambda r: (
            r["status"] != results.Status.COMPLETED,
            int(r["depth"]),
            r["arch"] != "resnet",
            int(r["seed"]),
        ),
    )
    speed = results.read_metrics(folder).groupby("run_id")["images_per_second"].median()
    header = ["net", "seed", "test", "train", *(["Table 6", "reproductions"] if published else [])]
    header += ["precision, processor", "threads", "wall time", "median img/s"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for r in runs:
        net = f"{'ResNet' if r['arch'] == 'resnet' else 'plain'}-{r['depth']}"
        done = r["status"] == results.Status.COMPLETED
        test = f"{float(r['final_test_error']):.2f}"
        cells = [
            net if done else f"{net}, {r['status']} at epoch {r['epochs_done']} of {r['epochs']}",
            r["seed"],
        ]
        cells += [f"**{test}**" if done else test, f"{float(r['final_train_error']):.2f}"]
        if published:
            cells += published.get((r["arch"], int(r["depth"])), ("", "")) if done else ("", "")
        fast = "fast bf16" if r["cpu_bf16"] == "yes" else "no fast bf16"
        cells += [f"{r['precision']}, {r['cpu']} ({fast})", r["threads"], duration(float(r["wall_seconds"]))]
        cells.append(f"{speed[r['run_id']]:,.0f}")
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


BLOCKS: dict[str, Callable[[Path], str]] = {
    "course-means": course_means,
    "course-seeds": course_seeds,
    "course-verdict": course_verdict,
    "paper-runs": lambda root: runs_table(root, "paper", PUBLISHED),
    "longer-runs": lambda root: runs_table(root, "longer"),
}


def render(text: str, root: Path) -> str:
    """`text` with every results block rendered anew from the results folders under `root`."""

    def block(m: re.Match[str]) -> str:
        if m.group(2) not in BLOCKS:
            raise ValueError(f"no results block named {m.group(2)!r} (known: {', '.join(BLOCKS)})")
        return f"{m.group(1)}{BLOCKS[m.group(2)](root)}\n{m.group(4)}"

    return BLOCK.sub(block, text)


def pages(root: Path) -> list[Path]:
    """The pages that may hold results blocks: the README and every page of docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]
