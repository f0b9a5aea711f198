"""The table of `resdepth bench --json` records kept in `results/reference/bench/`: each a machine's
throughput as bench measured it there, so that docs/speed.md shows what was measured, not what was
typed after reading a terminal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from resdepth.docblocks.markdown import REFERENCE, head
from resdepth.models import NetSpec
from resdepth.progress import duration
from resdepth.runs import PAPER_EPOCHS

BENCH = REFERENCE / "bench"


def _runs(root: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any], str]]:
    """Every net of every record, files in name order: the record, the net's entry, its name."""
    for path in sorted((root / BENCH).glob("*.json")):
        record = json.loads(path.read_text())
        for run in record.get("runs", []):  # `bench --pack --json` records rates by K instead
            yield (
                record,
                run,
                NetSpec(run["arch"], run["depth"], norm=run["norm"], activation=run["activation"]).name,
            )


def bench_records(root: Path) -> str:
    """One line per net and record (the files in name order): the machine as bench named it (its
    CPU's vector and bf16 instructions and threads, or its GPU), the precision, both loops' img/s
    and their ratio, and the paper's 164 epochs projected from resdepth's."""
    lines = head(
        "machine", "measured", "torch", "net", "precision", "resdepth img/s", "textbook img/s", "ratio",
        f"{PAPER_EPOCHS} epochs",
    )  # fmt: skip
    for record, run, net in _runs(root):
        lines.append(
            f"| {record['hardware']} | {record.get('measured_at', '')[:10]} | {record['torch']} | {net} "
            f"| {run['precision']} | {run['resdepth']:,.0f} | {run['textbook']:,.0f} "
            f"| {run['ratio']:.2f}x | {duration(run[f'epochs_{PAPER_EPOCHS}_seconds'])} |"
        )
    return "\n".join(lines)


def bf16_gain(root: Path) -> str:
    """How much faster resdepth's loop ran in bf16 than in fp32 on each machine recorded in both,
    the same threads and engine: `1.24x (ResNet-56) to 1.68x (plain-20) on AMD EPYC (AVX512,
    AVX512-BF16), 2 threads`. Two records of one machine, net and precision are an error."""
    rates: dict[tuple[str, str, str, str], float] = {}
    for record, run, net in _runs(root):
        key = (record["hardware"], run["engine"], net, run["precision"])
        if key in rates:
            raise ValueError(
                f"{BENCH} holds two records of {net} in {run['precision']} on {record['hardware']}"
            )
        rates[key] = run["resdepth"]
    gains: dict[str, list[tuple[float, str]]] = {}
    for (machine, engine, net, precision), rate in rates.items():
        if precision == "bf16" and (machine, engine, net, "fp32") in rates:
            gains.setdefault(machine, []).append((rate / rates[(machine, engine, net, "fp32")], net))
    if not gains:
        raise ValueError(f"no machine in {BENCH} was benched in both bf16 and fp32")
    return "; ".join(
        f"{min(g)[0]:.2f}x ({min(g)[1]}) to {max(g)[0]:.2f}x ({max(g)[1]}) on {machine}"
        for machine, g in gains.items()
    )


VALUES = {"bench-bf16-gain": bf16_gain}

BLOCKS = {"bench-records": bench_records}
