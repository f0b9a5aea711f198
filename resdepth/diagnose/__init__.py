"""Why ResNets work, measured: `measures` (one net at a time), `run` (fresh nets or a sweep's
checkpoints, into CSVs), `figures` (their plots)."""

from resdepth.diagnose.measures import (
    MEASURES,
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
from resdepth.diagnose.run import Diagnosis, fresh, from_results, run, summaries

__all__ = [
    "MEASURES",
    "BlockRef",
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
