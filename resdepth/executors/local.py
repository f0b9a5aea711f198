"""`--jobs N`: runs train in N worker processes on this machine, on the CPU or round-robin on its GPUs."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing import connection, get_context, parent_process
from typing import Any

import torch

from resdepth.device import available_cpus
from resdepth.errors import UserError
from resdepth.executors.base import Event, Job, Pool, Report, RunEnded, WorkerCrashed, run_job


def _process_main(conn: connection.Connection) -> None:
    """A worker process: trains the jobs it is sent until told to stop. Each report goes down the
    pipe at once, so an epoch's row reaches the driver even if a kill follows."""
    _die_with_parent()
    try:
        while (job := conn.recv()) is not None:
            run_job(job, None, conn.send)
    except (KeyboardInterrupt, EOFError):  # Ctrl-C reaches the whole process group; the driver reports it
        pass
    finally:
        conn.close()


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the driver dies, `kill -9` included, so an orphan
    never trains on and saves a checkpoint past rows the dead driver never wrote. (Elsewhere it stops
    at its next send down the closed pipe.)"""
    if sys.platform != "linux":
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    parent = parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died before the call took effect
        os._exit(1)


@dataclass
class _Worker:
    process: Any
    conn: connection.Connection
    running: int = 0  # runs of its job whose end it has not reported


class LocalPool(Pool):
    """One worker process per slot, kept for run after run (torch and the data load once per
    worker) and started again when one dies. A job's handle is its slot."""

    def __init__(self, slots: list[str], threads: int) -> None:
        super().__init__(slots, threads)
        # spawn, not fork: a forked copy of a process that already ran torch can deadlock.
        self.context = get_context("spawn")
        self.workers: dict[int, _Worker] = {}

    def submit(self, job: Job, slot: int) -> int:
        if slot not in self.workers:
            here, there = self.context.Pipe()
            process = self.context.Process(target=_process_main, args=(there,), daemon=True)
            process.start()
            there.close()  # the child holds the only other end: its exit means end of file here
            self.workers[slot] = _Worker(process, here)
        self.workers[slot].conn.send(job)
        self.workers[slot].running = len(job.tasks)
        return slot

    def wait(self, handles: list[int]) -> list[tuple[int, Event]]:
        ready = set(connection.wait([self.workers[h].conn for h in handles], timeout=1.0))
        events: list[tuple[int, Event]] = []
        for h in handles:
            w = self.workers[h]
            if w.conn not in ready:
                continue
            try:
                while w.running and w.conn.poll():
                    report: Report = w.conn.recv()
                    events.append((h, report))
                    w.running -= isinstance(report.event, RunEnded)
            except EOFError:  # the process is gone; whatever it sent came before this
                w.process.join()
                w.conn.close()
                events.append((h, WorkerCrashed(f"worker process died (exit code {w.process.exitcode})")))
                del self.workers[h]
        return events

    def cancel(self, handles: list[int]) -> None:
        # A worker that died is gone from `workers` while its job is still active (until the driver
        # handles its WorkerCrashed): nothing of it to end.
        alive = [w for h in handles if (w := self.workers.pop(h, None)) is not None]
        for w in alive:
            w.process.terminate()
        for w in alive:
            w.process.join(timeout=10)

    def close(self) -> None:
        """Idle workers are told to stop; a busy one (only after an error in the driver) is ended."""
        for w in self.workers.values():
            if w.running:
                w.process.terminate()
            else:
                with suppress(OSError):
                    w.conn.send(None)
        for w in self.workers.values():
            w.process.join(timeout=10)
        self.workers.clear()


def local_slots(device: torch.device, jobs: str, runs_per_gpu: int) -> list[str]:
    """The device of each of the `--jobs` slots (a positive number or auto): GPUs round-robin,
    `runs_per_gpu` runs on each."""
    if device.type == "cuda":
        gpus = (
            [f"cuda:{i}" for i in range(torch.cuda.device_count())] if device.index is None else [str(device)]
        )
        most = len(gpus) * runs_per_gpu
        n = most if jobs == "auto" else int(jobs)
        if n > most:
            raise UserError(
                f"--jobs {n} is more than {len(gpus)} GPU(s) x --runs-per-gpu {runs_per_gpu}; "
                "raise --runs-per-gpu to share a GPU between more runs"
            )
        return [gpus[i % len(gpus)] for i in range(n)]
    # On CPU a small net cannot use many threads well: one run per 4 cores keeps them all busy.
    n = max(1, available_cpus() // 4) if jobs == "auto" else int(jobs)
    return [str(device)] * n
