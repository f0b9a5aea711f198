"""Where a sweep's runs train: in this process, in N local processes, or as Ray tasks on a cluster.

Every executor runs the same `run_task` and sends its events (finished epochs, progress) back to
the driver, which alone writes the results folder (see `sweep.Writer`): CSVs are never written by
two processes at once. A worker process that dies is started again, at most `MAX_ATTEMPTS` times
in all; the new attempt resumes from the run's last checkpoint, which lives in the results folder
(on a cluster, a filesystem every node shares).

Numbers are bit-identical across executors for the same threads per run: on CPU, PyTorch's batch
norm and convolution-gradient reductions are split across threads, so a different thread count
changes the last digits (about 1e-4 of a loss after two epochs).
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, replace
from functools import partial
from multiprocessing import connection, get_context
from pathlib import Path
from typing import Any, Protocol

import torch

from resdepth.config import RunConfig
from resdepth.data.store import Dataset, load
from resdepth.errors import UserError
from resdepth.step import DEFAULT_ENGINE, Engine
from resdepth.train import Diverged, train_run

MAX_ATTEMPTS = 3  # a run whose worker dies three times is marked failed
# ("epoch", EpochRecord) | ("progress", iteration, epoch, lr) | ("end", status, error) | ("crashed", why)
Event = tuple[Any, ...]


@dataclass(frozen=True)
class Task:
    """One run as a worker needs it: everything is a plain value, so it pickles to any process."""

    cfg: RunConfig
    data_dir: str | None  # absolute, resolved by the driver: a worker's cwd and env may differ
    checkpoint: str
    device: str
    threads: int
    engine: Engine = DEFAULT_ENGINE
    attempt: int = 1


class Sink(Protocol):
    """What an executor reports to: the driver's single writer."""

    def start(self, task: Task) -> None: ...
    def event(self, task: Task, event: Event) -> None: ...
    def end(self, task: Task, status: str, error: str) -> None: ...
    def retry(self, task: Task, reason: str) -> None: ...


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


_loaded: dict[tuple[str, str | None], Dataset] = {}  # a worker process loads each dataset once


def load_split(task: Task) -> Dataset:
    cfg = task.cfg
    key = (cfg.dataset, task.data_dir)
    if key not in _loaded:
        _loaded[key] = load(cfg.dataset, task.data_dir, offline=True)
    return _loaded[key].split(cfg.train_subset, cfg.val_split, cfg.seed, cfg.test_subset)


def run_task(task: Task, data: Dataset | None, emit: Callable[[Event], None]) -> tuple[str, str]:
    """Train one run (or resume it from its checkpoint); returns (status, error). Never raises for a
    broken run, only for Ctrl-C, so one bad run cannot stop the others."""
    torch.set_num_threads(task.threads)
    try:
        train_run(
            task.cfg,
            data if data is not None else load_split(task),
            torch.device(task.device),
            Path(task.checkpoint),
            lambda record: emit(("epoch", record)),
            lambda iteration, epoch, lr: emit(("progress", iteration, epoch, lr)),
            task.engine,
        )
    except Diverged as exc:
        return "diverged", str(exc)
    except Exception as exc:
        return "failed", f"{exc.__class__.__name__}: {exc}"
    return "completed", ""


class Executor(ABC):
    def __init__(self, device: str, threads: int) -> None:
        self.device = device  # where a task trains unless a pool slot says otherwise
        self.threads = threads  # CPU threads of each run

    @property
    def at_once(self) -> int:
        return 1

    @abstractmethod
    def run(self, tasks: Iterable[Task], sink: Sink, fail_fast: bool = False) -> None:
        """Train every task, reporting to `sink`; on Ctrl-C, end the active ones as interrupted."""


class Inline(Executor):
    """One run at a time in this process (`--jobs 1`): nothing to start, data loaded once."""

    def __init__(self, device: str, threads: int, data: Callable[[RunConfig], Dataset]) -> None:
        super().__init__(device, threads)
        self.data = data

    def run(self, tasks: Iterable[Task], sink: Sink, fail_fast: bool = False) -> None:
        for task in tasks:
            sink.start(task)
            try:
                status, error = run_task(task, self.data(task.cfg), partial(sink.event, task))
            except KeyboardInterrupt:
                sink.end(task, "interrupted", "")
                raise
            sink.end(task, status, error)
            if fail_fast and status == "failed":
                return


class Pool(Executor):
    """Runs in workers, one per slot; each slot names the device its run trains on."""

    def __init__(self, slots: list[str], threads: int) -> None:
        super().__init__(slots[0], threads)
        self.slots = slots

    @property
    def at_once(self) -> int:
        return len(self.slots)

    @abstractmethod
    def submit(self, task: Task, slot: int) -> Any:
        """Start `task` in a worker, on its slot; returns its handle."""

    @abstractmethod
    def wait(self, handles: list[Any]) -> list[tuple[Any, Event]]:
        """Events of these workers, in order, waiting a moment (at most a second) for them. A worker
        that died without its ("end", ...) event yields ("crashed", reason)."""

    @abstractmethod
    def cancel(self, handles: list[Any]) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def run(self, tasks: Iterable[Task], sink: Sink, fail_fast: bool = False) -> None:
        pending = deque(tasks)
        free = list(range(len(self.slots)))
        active: dict[Any, tuple[Task, int]] = {}
        try:
            while pending or active:
                while pending and free:
                    slot = free.pop(0)
                    task = replace(pending.popleft(), device=self.slots[slot])
                    sink.start(task)
                    active[self.submit(task, slot)] = (task, slot)
                for handle, event in self.wait(list(active)):
                    task, slot = active[handle]
                    if event[0] not in ("end", "crashed"):
                        sink.event(task, event)
                        continue
                    del active[handle]
                    free.append(slot)
                    if event[0] == "crashed" and task.attempt < MAX_ATTEMPTS:
                        sink.retry(task, event[1])
                        pending.appendleft(replace(task, attempt=task.attempt + 1))
                        continue
                    status, error = (
                        event[1:] if event[0] == "end"
                        else ("failed", f"worker died {MAX_ATTEMPTS} times; last: {event[1]}")
                    )  # fmt: skip
                    sink.end(task, status, error)
                    if fail_fast and status == "failed":
                        pending.clear()
        except KeyboardInterrupt:
            self.cancel(list(active))
            for task, _ in active.values():
                sink.end(task, "interrupted", "")
            raise
        finally:
            self.close()


# --- local processes --------------------------------------------------------------------------


def _process_main(conn: connection.Connection) -> None:
    """A worker process: trains the runs it is sent until told to stop. Each event goes down the
    pipe at once, so an epoch's row reaches the driver even if a kill follows."""
    try:
        while (task := conn.recv()) is not None:
            status, error = run_task(task, None, conn.send)
            conn.send(("end", status, error))
    except (KeyboardInterrupt, EOFError):  # Ctrl-C reaches the whole process group; the driver reports it
        pass
    finally:
        conn.close()


@dataclass
class _Worker:
    process: Any
    conn: connection.Connection
    busy: bool = False


class LocalPool(Pool):
    """`--jobs N`: one worker process per slot, kept for run after run (torch and the data load
    once per worker) and started again when one dies. A run's handle is its slot."""

    def __init__(self, slots: list[str], threads: int) -> None:
        super().__init__(slots, threads)
        # spawn, not fork: a forked copy of a process that already ran torch can deadlock.
        self.context = get_context("spawn")
        self.workers: dict[int, _Worker] = {}

    def submit(self, task: Task, slot: int) -> int:
        if slot not in self.workers:
            here, there = self.context.Pipe()
            process = self.context.Process(target=_process_main, args=(there,), daemon=True)
            process.start()
            there.close()  # the child holds the only other end: its exit means end of file here
            self.workers[slot] = _Worker(process, here)
        self.workers[slot].conn.send(task)
        self.workers[slot].busy = True
        return slot

    def wait(self, handles: list[int]) -> list[tuple[int, Event]]:
        ready = set(connection.wait([self.workers[h].conn for h in handles], timeout=1.0))
        events: list[tuple[int, Event]] = []
        for h in handles:
            w = self.workers[h]
            if w.conn not in ready:
                continue
            try:
                while w.busy and w.conn.poll():
                    event = w.conn.recv()
                    events.append((h, event))
                    w.busy = event[0] != "end"
            except EOFError:  # the process is gone; whatever it sent came before this
                w.process.join()
                w.conn.close()
                events.append((h, ("crashed", f"worker process died (exit code {w.process.exitcode})")))
                del self.workers[h]
        return events

    def cancel(self, handles: list[int]) -> None:
        for h in handles:
            self.workers[h].process.terminate()
        for h in handles:
            self.workers.pop(h).process.join(timeout=10)

    def close(self) -> None:
        """Idle workers are told to stop; a busy one (only after an error in the driver) is ended."""
        for w in self.workers.values():
            if w.busy:
                w.process.terminate()
            else:
                with suppress(OSError):
                    w.conn.send(None)
        for w in self.workers.values():
            w.process.join(timeout=10)
        self.workers.clear()


def make_executor(
    executor: str,
    device: torch.device,
    asked_device: str,
    data: Callable[[RunConfig], Dataset],
    jobs: str = "1",
    threads: int | None = None,
    runs_per_gpu: int = 1,
    address: str | None = None,
    cpus_per_run: float = 1.0,
    gpus_per_run: float | None = None,
) -> Executor:
    """The executor the sweep options ask for; every wrong combination is one line, before any work.

    `device` is the one `asked_device` (auto, cpu, cuda, mps) resolves to on this machine; a Ray
    cluster's nodes resolve `asked_device` for themselves.
    """
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be a positive number, got {threads}")
    if runs_per_gpu < 1:
        raise UserError(f"--runs-per-gpu must be a positive number, got {runs_per_gpu}")
    if executor == "ray":
        if jobs != "1":
            raise UserError(
                "--jobs is for the local executor; with Ray, size runs by --cpus-per-run/--gpus-per-run"
            )
        if not cpus_per_run > 0:
            raise UserError(f"--cpus-per-run must be above 0, got {cpus_per_run:g}")
        if gpus_per_run is not None and gpus_per_run < 0:
            raise UserError(f"--gpus-per-run must be >= 0, got {gpus_per_run:g}")
        return RayPool(address, cpus_per_run, gpus_per_run, asked_device, threads)
    if executor != "local":
        raise UserError(f"--executor must be local or ray, got {executor!r}")
    if address is not None or gpus_per_run is not None or cpus_per_run != 1.0:
        raise UserError("--address, --cpus-per-run and --gpus-per-run are for --executor ray")
    slots = local_slots(device, jobs, runs_per_gpu)
    if len(slots) == 1:
        return Inline(slots[0], threads or torch.get_num_threads(), data)
    return LocalPool(slots, threads or max(1, torch.get_num_threads() // len(slots)))


def local_slots(device: torch.device, jobs: str, runs_per_gpu: int) -> list[str]:
    """The device of each of the `--jobs` slots: GPUs round-robin, `runs_per_gpu` runs on each."""
    if device.type == "cuda":
        gpus = (
            [f"cuda:{i}" for i in range(torch.cuda.device_count())] if device.index is None else [str(device)]
        )
        most = len(gpus) * runs_per_gpu
        n = most if jobs == "auto" else _jobs(jobs)
        if n > most:
            raise UserError(
                f"--jobs {n} is more than {len(gpus)} GPU(s) x --runs-per-gpu {runs_per_gpu}; "
                "raise --runs-per-gpu to share a GPU between more runs"
            )
        return [gpus[i % len(gpus)] for i in range(n)]
    # On CPU a small net cannot use many threads well: one run per 4 cores keeps them all busy.
    n = max(1, available_cpus() // 4) if jobs == "auto" else _jobs(jobs)
    return [str(device)] * n


def _jobs(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise UserError(f"--jobs takes a positive number or auto, got {text!r}")
    return n


# --- Ray --------------------------------------------------------------------------------------


def _ray_main(task: Task, queue: Any) -> tuple[str, str]:
    """A Ray task: events go to the driver through a Ray queue; `put` returns once it holds them."""
    key = (task.cfg.run_id, task.attempt)
    return run_task(task, None, lambda event: queue.put((key, event)))


class RayPool(Pool):
    """`--executor ray`: each run is a plain Ray task with the resources asked for."""

    def __init__(
        self,
        address: str | None,
        cpus_per_run: float,
        gpus_per_run: float | None,
        device: str,
        threads: int | None,
    ) -> None:
        try:
            import ray
            from ray.util.queue import Queue
        except ImportError:
            raise UserError("--executor ray needs Ray: pip install 'resdepth[ray]'") from None
        self.ray = ray
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no usage reports from this driver or its cluster
        address = address or os.environ.get("RAY_ADDRESS") or None
        self.tmp: str | None = None
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is None:  # a private local instance: its files in a temporary folder, not ~
            self.tmp = tempfile.mkdtemp(prefix="resdepth-ray-")
            # Recent Ray secures a new local instance with a token it would save in ~/.ray; one in
            # the environment, for this instance only, keeps the security and leaves home alone.
            if "RAY_AUTH_MODE" not in os.environ:
                os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
            options |= {"_temp_dir": self.tmp, "num_cpus": available_cpus(), "object_store_memory": 200 << 20}
        try:
            ray.init(address=address, **options)
            nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
            if gpus_per_run is None:
                has_gpus = any(n.get("GPU", 0) for n in nodes)
                gpus_per_run = 1.0 if device in ("cuda", "auto") and has_gpus else 0.0
            if device == "cuda" and not gpus_per_run:
                raise UserError("--device cuda with --executor ray needs --gpus-per-run above 0")
            if device in ("cpu", "mps") and gpus_per_run:
                raise UserError(
                    f"--device {device} and --gpus-per-run {gpus_per_run:g} contradict each other"
                )
            fits = [_fits(n, cpus_per_run, gpus_per_run) for n in nodes]
            if not any(fits):
                largest: dict[str, float] = max(
                    nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={}
                )
                raise UserError(
                    f"no Ray node has {cpus_per_run:g} CPU(s) and {gpus_per_run:g} GPU(s) for one run; "
                    f"the largest has {largest.get('CPU', 0):g} CPU(s) and {largest.get('GPU', 0):g} GPU(s)"
                )
        except BaseException:
            self.close()
            raise
        slots = ["cuda" if gpus_per_run else "cpu"] * sum(fits)
        super().__init__(slots, threads or max(1, int(cpus_per_run)))
        self.queue = Queue()
        self.remote = ray.remote(_ray_main).options(
            num_cpus=cpus_per_run,
            num_gpus=gpus_per_run,
            max_retries=0,  # retries are the Pool's
        )
        self.refs: dict[tuple[str, int], Any] = {}

    def submit(self, task: Task, slot: int) -> Any:
        ref = self.remote.remote(task, self.queue)
        self.refs[(task.cfg.run_id, task.attempt)] = ref
        return ref

    def wait(self, handles: list[Any]) -> list[tuple[Any, Event]]:
        ray = self.ray
        ready, _ = ray.wait(handles, num_returns=len(handles), timeout=0.25)
        events: list[tuple[Any, Event]] = []
        # After ray.wait: a finished task's events were all put before it returned.
        size = self.queue.qsize()
        for key, event in self.queue.get_nowait_batch(size) if size else []:
            if self.refs.get(key) in handles:  # else a stale event of a cancelled attempt
                events.append((self.refs[key], event))
        for ref in ready:
            try:
                events.append((ref, ("end", *ray.get(ref))))
            except ray.exceptions.RayError as exc:
                events.append((ref, ("crashed", f"Ray worker died ({exc.__class__.__name__})")))
        return events

    def cancel(self, handles: list[Any]) -> None:
        for ref in handles:
            self.ray.cancel(ref, force=True)

    def close(self) -> None:
        if self.ray.is_initialized():
            self.ray.shutdown()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _fits(node: dict[str, float], cpus: float, gpus: float) -> int:
    """How many runs this node can hold at once."""
    n = math.floor(node.get("CPU", 0) / cpus + 1e-9) if cpus else math.inf
    if gpus:
        n = min(n, math.floor(node.get("GPU", 0) / gpus + 1e-9))
    return int(n) if n != math.inf else 1
