"""`--executor ray`: each job (a run, or a packed group) is a plain Ray task on a cluster (or a private
local instance)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import stat
import tempfile
from pathlib import Path
from typing import Any

from resdepth.device import available_cpus
from resdepth.errors import UserError
from resdepth.executors.base import Event, Job, Pool, WorkerCrashed, run_job
from resdepth.files import atomic_write


def _ray_main(job: Job, queue: Any) -> None:
    """A Ray task: reports go to the driver through a Ray queue; `put` returns once it holds them."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    run_job(job, None, lambda report: queue.put((job.key, report)), node=node[:12])


class RayPool(Pool):
    """`--executor ray`: each job (a run, or a packed group) is a plain Ray task with the resources
    asked for per run."""

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
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        except ImportError:
            raise UserError("--executor ray needs Ray: pip install 'resdepth[ray]'") from None
        self.ray = ray
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no usage reports from this driver or its cluster
        address = address or os.environ.get("RAY_ADDRESS") or None
        self.tmp: str | None = None
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is None:  # a private local instance: its files in a temporary folder, not ~
            remove_orphans()
            self.tmp = tempfile.mkdtemp(prefix=f"{PRIVATE}{os.getpid()}-")
            options |= _private_instance(self.tmp)
        try:
            if self.tmp is not None:
                record(Path(self.tmp), started=False)
            ray.init(address=address, **options)
            if self.tmp is not None:
                record(Path(self.tmp), started=True)
            nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
            gpus_per_run, fits = _placement(nodes, device, cpus_per_run, gpus_per_run)
        except BaseException:
            self.close()
            raise
        slots = ["cuda" if gpus_per_run else "cpu"] * sum(fits)
        super().__init__(slots, threads or max(1, int(cpus_per_run)))
        # The queue is an actor: on the driver's own node, so that losing any other node loses no row.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.queue = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
        self.remote = ray.remote(_ray_main).options(
            num_cpus=cpus_per_run,
            num_gpus=gpus_per_run,
            max_retries=0,  # retries are the Pool's
        )
        self.refs: dict[tuple[str, int], Any] = {}

    def submit(self, job: Job, slot: int) -> Any:
        ref = self.remote.remote(job, self.queue)
        self.refs[job.key] = ref
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
                ray.get(ref)  # it returns nothing: its reports came through the queue
            except ray.exceptions.RayError as exc:
                events.append((ref, WorkerCrashed(f"Ray worker died ({exc.__class__.__name__})")))
        return events

    def cancel(self, handles: list[Any]) -> None:
        for ref in handles:
            self.ray.cancel(ref, force=True)

    def close(self) -> None:
        if self.ray.is_initialized():
            self.ray.shutdown()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _private_instance(tmp: str) -> dict[str, Any]:
    """`ray.init` options of a private local instance, its files in `tmp`."""
    # Recent Ray secures a new local instance with a token it would save in ~/.ray; one in the
    # environment, for this instance only, keeps the security and leaves home alone.
    if "RAY_AUTH_MODE" not in os.environ:
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    # On the loopback address: a private instance serves this machine alone.
    return {
        "_temp_dir": tmp,
        "_node_ip_address": "127.0.0.1",
        "num_cpus": available_cpus(),
        "object_store_memory": 200 << 20,
    }


def _placement(
    nodes: list[dict[str, float]], device: str, cpus_per_run: float, gpus_per_run: float | None
) -> tuple[float, list[int]]:
    """The GPUs each run asks for (1 by default where the cluster has GPUs and the device allows),
    and how many runs fit each node at once; an error where they contradict or fit nowhere."""
    if gpus_per_run is None:
        has_gpus = any(n.get("GPU", 0) for n in nodes)
        gpus_per_run = 1.0 if device in ("cuda", "auto") and has_gpus else 0.0
    if device == "cuda" and not gpus_per_run:
        raise UserError("--device cuda with --executor ray needs --gpus-per-run above 0")
    if device in ("cpu", "mps") and gpus_per_run:
        raise UserError(f"--device {device} and --gpus-per-run {gpus_per_run:g} contradict each other")
    fits = [_fits(n, cpus_per_run, gpus_per_run) for n in nodes]
    if not any(fits):
        largest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
        raise UserError(
            f"no Ray node has {cpus_per_run:g} CPU(s) and {gpus_per_run:g} GPU(s) for one run; "
            f"the largest has {largest.get('CPU', 0):g} CPU(s) and {largest.get('GPU', 0):g} GPU(s)"
        )
    return gpus_per_run, fits


PRIVATE = "resdepth-ray-"  # + the driver's pid: the temporary folder of a private local instance
RECORD = "resdepth-instance.json"  # in that folder: the driver and the processes it started, as made


def record(folder: Path, started: bool) -> None:
    """Write down what this driver's private instance is: the driver, and once Ray has started, the
    processes it started (every descendant of the driver then), each as (pid, start time), so that a
    later sweep can tell them from anyone else's, a pid used again included."""
    me = os.getpid()
    procs = [(pid, _start_time(pid)) for pid in _descendants([me])] if started else []
    text = json.dumps({"driver": [me, _start_time(me)], "processes": procs})
    atomic_write(folder / RECORD, lambda f: f.write(text.encode()))


def remove_orphans() -> list[Path]:
    """What a private instance whose driver was killed (kill -9) left: its temporary folder and the
    processes started for it, and only what can be shown to be that: a real folder of this user's,
    named for its driver, holding the record (`record`) that its driver wrote, whose driver is gone,
    and of the recorded processes those that still are (same pid, same start time, this user's),
    with the processes they started since (Ray's workers). Nothing is matched by name or command
    line, and no link is followed. Returns the folders removed."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{PRIVATE}*"):
        found = _orphan(folder)
        if found is None:
            continue
        mine = [pid for pid, start in found if _start_time(pid) == start and _owner(pid) == os.getuid()]
        for pid in [*_descendants(mine), *mine]:  # the tree first: a killed parent's children move
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)  # never through a link: it refuses one at the top
        removed.append(folder)
    return removed


def _orphan(folder: Path) -> list[tuple[int, int]] | None:
    """The processes recorded in `folder` if it is a killed driver's private instance, else None."""
    try:
        info = folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            return None
        path = folder / RECORD
        if not stat.S_ISREG(path.lstat().st_mode) or path.lstat().st_uid != os.getuid():
            return None
        data = json.loads(path.read_text())
        (driver, start), procs = data["driver"], data["processes"]
        if folder.name.removeprefix(PRIVATE).split("-")[0] != str(driver) or _start_time(driver) == start:
            return None  # not named for its driver, or the driver still runs
        return [(int(pid), int(began)) for pid, began in procs]
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _stat_fields(pid: int) -> list[str]:
    """Linux: /proc/PID/stat after the process's name (which may hold spaces and ')'); [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _start_time(pid: int) -> int:
    """When `pid` started, in clock ticks since boot (-1 where it is gone): with the pid, a process's
    identity, since a pid is given again once its process ends."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else -1


def _owner(pid: int) -> int:
    try:
        return Path(f"/proc/{pid}").stat().st_uid
    except OSError:
        return -1


def _descendants(roots: list[int]) -> list[int]:
    """Every process below `roots`, by parent pid (Linux), children after their parents."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat_fields(int(entry.name))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], list(roots)
    while queue:
        for child in children.get(queue.pop(0), []):
            if child not in found:
                found.append(child)
                queue.append(child)
    return found


def _fits(node: dict[str, float], cpus: float, gpus: float) -> int:
    """How many runs this node can hold at once (`cpus` is above 0: the options say so)."""
    n = math.floor(node.get("CPU", 0) / cpus + 1e-9)
    if gpus:
        n = min(n, math.floor(node.get("GPU", 0) / gpus + 1e-9))
    return n
