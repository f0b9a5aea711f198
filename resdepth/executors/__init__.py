"""Where a sweep's runs train: in this process, in N local processes, or as Ray tasks on a cluster."""

from __future__ import annotations

from collections.abc import Callable

import torch

from resdepth.config import SweepConfig
from resdepth.data.store import Dataset
from resdepth.executors.base import (
    MAX_ATTEMPTS,
    EpochDone,
    Event,
    Executor,
    Inline,
    Job,
    News,
    Outcome,
    Progress,
    Report,
    RunEnded,
    Sink,
    Started,
    Task,
    WorkerCrashed,
    run_job,
)
from resdepth.executors.local import LocalPool, local_slots
from resdepth.runs import RunConfig

__all__ = [
    "MAX_ATTEMPTS",
    "EpochDone",
    "Event",
    "Executor",
    "Inline",
    "Job",
    "News",
    "Outcome",
    "Progress",
    "Report",
    "RunEnded",
    "Sink",
    "Started",
    "Task",
    "WorkerCrashed",
    "make_executor",
    "run_job",
]


def make_executor(cfg: SweepConfig, device: torch.device, data: Callable[[RunConfig], Dataset]) -> Executor:
    """The executor the sweep's options ask for (`SweepConfig.validate` has checked them).

    `device` is the one `cfg.device` (auto, cpu, cuda, mps) resolves to on this machine; a Ray
    cluster's nodes resolve `cfg.device` for themselves.
    """
    if cfg.executor == "ray":
        from resdepth.executors.ray_pool import RayPool

        return RayPool(cfg.address, cfg.cpus_per_run, cfg.gpus_per_run, cfg.device, cfg.threads)
    slots = local_slots(device, cfg.jobs, cfg.runs_per_gpu)
    if len(slots) == 1:
        return Inline(slots[0], cfg.threads or torch.get_num_threads(), data)
    return LocalPool(slots, cfg.threads or max(1, torch.get_num_threads() // len(slots)))
