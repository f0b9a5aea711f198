"""Why ResNets work, measured: `measures` (one net at a time), `run` (fresh nets or a sweep's
checkpoints, into CSVs), `summaries` and `figures` (what is shown of them), `registry` (which is
whose, one entry per measurement)."""

from resdepth.diagnose.measures import (
    BlockRef,
    Inputs,
    Net,
    blocks,
    deleted,
    error,
    grad_norms,
    grown,
    identity,
    inputs,
    lesions,
    responses,
    scale,
)
from resdepth.diagnose.run import Chosen, Diagnosis, fresh, from_results, run, summaries

__all__ = [
    "BlockRef",
    "Chosen",
    "Diagnosis",
    "Inputs",
    "Net",
    "blocks",
    "deleted",
    "error",
    "fresh",
    "from_results",
    "grad_norms",
    "grown",
    "identity",
    "inputs",
    "lesions",
    "responses",
    "run",
    "scale",
    "summaries",
]
