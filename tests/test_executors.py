"""Scale-out: `--jobs N` processes and Ray tasks give the rows one process gives, survive killed
workers by resuming from checkpoints, and refuse impossible requests in one line."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from resdepth import executors, results
from resdepth.config import SweepConfig
from resdepth.data.download import MIRROR_ENV
from resdepth.device import resolve_precision
from resdepth.errors import UserError
from resdepth.executors import MAX_ATTEMPTS, Outcome, Task
from resdepth.executors.base import Pool
from resdepth.planner import prepare, run
from resdepth.results import EpochRecord, Window
from resdepth.runs import RunConfig, expand

pytestmark = pytest.mark.slow  # minutes of real sweeps: `make test` runs them, `make test-fast` does not

NUMBERS = [c for c in results.METRICS_COLUMNS if c not in ("epoch_seconds", "images_per_second")]
# Four runs; one thread per run everywhere, because CPU reductions round differently with more.
# An explicit precision: under Ray, `auto` is left to each node and hashed as "auto" (see below).
SMALL = ["--dataset", "synthetic", "--depth", "8", "--seeds", "0,1", "--epochs", "2",
         "--train-subset", "600", "--batch-size", "100", "--threads", "1", "--precision", "fp32"]  # fmt: skip


def numbers(out: Path) -> pd.DataFrame:
    return results.read_metrics(out)[NUMBERS].sort_values(["run_id", "epoch"]).reset_index(drop=True)


class KillingDisplay:
    """Records each (re)start, and kills workers when a run reports the epoch `kill_at` (None: any
    epoch), `times` times."""

    def __init__(self, kill: Callable[[], None], kill_at: int | None, times: int = 1) -> None:
        self.kill, self.kill_at, self.times = kill, kill_at, times
        self.starts: list[tuple[str, int]] = []
        self.notes: list[str] = []

    def start_run(self, cfg: RunConfig, index: int, total: int, start_epoch: int) -> None:
        self.starts.append((cfg.run_id, start_epoch))

    def step(self, cfg: RunConfig, window: Window) -> None:
        pass

    def epoch(self, cfg: RunConfig, record: EpochRecord) -> None:
        if self.kill_at in (None, record.epoch) and self.times > 0:
            self.times -= 1
            self.kill()

    def end_run(self, cfg: RunConfig, status: str) -> None:
        pass

    def note(self, text: str) -> None:
        self.notes.append(text)

    def close(self) -> None:
        pass


def sweep_with(
    out: Path, executor: str, report: KillingDisplay, epochs: int = 5, **options: object
) -> list[Outcome]:
    """One ResNet-8 run of `epochs` epochs on 1,000 synthetic images: about a second an epoch."""
    cfg = SweepConfig(arch=["resnet"], depth=[8], dataset="synthetic", epochs=epochs, train_subset=1000,
                      batch_size=100, device="cpu", out=str(out), executor=executor, threads=1,
                      precision="fp32",
                      **{"seeds": [0], **options})  # type: ignore[arg-type]  # fmt: skip
    cfg.validate()
    with prepare(cfg) as plan:  # closing the plan stops its executor (a Ray instance, workers)
        return run(plan, report)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The rows of that run, uninterrupted, in this process."""
    out = tmp_path_factory.mktemp("clean")
    sweep_with(out, "local", KillingDisplay(lambda: None, 0))
    return numbers(out)


def kill_local_workers() -> None:
    for child in multiprocessing.active_children():
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]


def kill_ray_workers() -> None:
    """Ray names a worker process after the task it runs."""
    for proc in Path("/proc").iterdir():
        try:
            title = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if proc.name.isdigit() and title.startswith(b"ray::_ray_main"):
            os.kill(int(proc.name), signal.SIGKILL)


# --- local processes --------------------------------------------------------------------------


def test_jobs_2_gives_the_rows_of_jobs_1(cli, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert cli("sweep", *SMALL, "--out", str(one)).code == 0
    r = cli("sweep", *SMALL, "--jobs", "2", "--out", str(two))
    assert r.code == 0, r.err
    assert "2 at a time" in r.out
    pd.testing.assert_frame_equal(numbers(one), numbers(two))
    assert len(numbers(two)) == 8
    runs = pd.read_csv(two / "runs.csv")
    assert set(runs["status"]) == {"completed"} and set(runs["threads"]) == {1}


def test_a_killed_worker_resumes_from_its_checkpoint(clean: pd.DataFrame, tmp_path: Path) -> None:
    report = KillingDisplay(kill_local_workers, kill_at=2)
    (outcome,) = sweep_with(tmp_path / "killed", "local", report, jobs="2")
    assert outcome[1] == "completed"
    (run_id, first), (same, resumed) = report.starts
    assert run_id == same and first == 1 and resumed >= 2  # not from scratch
    assert "died (exit code -9)" in report.notes[0]
    pd.testing.assert_frame_equal(clean, numbers(tmp_path / "killed"))


def test_a_packed_group_whose_worker_died_is_retried_whole_from_its_checkpoints(tmp_path: Path) -> None:
    # Two seeds packed into one job: the kill takes both runs; the next attempt resumes both, packed.
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert len(sweep_with(clean, "local", KillingDisplay(lambda: None, 0), seeds=[0, 1], pack="2")) == 2
    report = KillingDisplay(kill_local_workers, kill_at=2)
    outcomes = sweep_with(killed, "local", report, jobs="2", seeds=[0, 1], pack="2")
    assert [o.status for o in outcomes] == ["completed"] * 2
    assert [start for _, start in report.starts[:2]] == [1, 1]
    assert all(start >= 2 for _, start in report.starts[2:]) and len(report.starts) == 4
    assert len(report.notes) == 2 and "died (exit code -9)" in report.notes[0]
    pd.testing.assert_frame_equal(numbers(clean), numbers(killed))


def test_a_run_whose_worker_keeps_dying_is_marked_failed(tmp_path: Path) -> None:
    # Each attempt is killed at its first epoch, so three attempts get at most three of six epochs done.
    report = KillingDisplay(kill_local_workers, kill_at=None, times=MAX_ATTEMPTS)
    out = tmp_path / "r"
    ((_, status, error),) = sweep_with(out, "local", report, epochs=6, jobs="2")
    assert status == "failed" and f"worker died {MAX_ATTEMPTS} times" in error
    assert len(report.starts) == MAX_ATTEMPTS
    assert pd.read_csv(out / "runs.csv")["status"].tolist() == ["failed"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jobs", "0"], "--jobs takes a positive number or auto"),
        (["--jobs", "many"], "--jobs takes a positive number or auto"),
        (["--threads", "0"], "--threads must be a positive number"),
        (["--gpus-per-run", "1"], "are for --executor ray"),
        (["--executor", "slurm"], "--executor must be one of local, ray, got 'slurm'"),
        (["--executor", "ray", "--jobs", "2"], "--jobs is for the local executor"),
        (["--executor", "ray", "--cpus-per-run", "0"], "--cpus-per-run must be above 0"),
    ],
)
def test_bad_executor_options_are_one_line(cli, tmp_path: Path, args: list[str], message: str) -> None:
    r = cli("sweep", "--dataset", "synthetic", "--epochs", "1", "--out", str(tmp_path / "o"), *args)
    assert r.code == 2 and message in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "metrics.csv").exists()


def test_ray_missing_says_how_to_install_it(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees without the extra
    r = cli("sweep", "--dataset", "synthetic", "--epochs", "1", "--executor", "ray", "--out", str(tmp_path))
    assert r.code == 2 and "pip install 'resdepth[ray]'" in r.err


# --- Ray, a real local instance ---------------------------------------------------------------

try:
    import ray
except ImportError:
    ray = None
# CI installs the extra and sets RESDEPTH_REQUIRE_RAY, so these fail there instead of skipping.
needs_ray = pytest.mark.skipif(
    ray is None and not os.environ.get("RESDEPTH_REQUIRE_RAY"), reason="the ray extra is not installed"
)


@needs_ray
@pytest.mark.parametrize("pack", ["1", "2"])  # 2: the two seeds of each net are one Ray task
def test_ray_gives_the_rows_of_the_local_executor_and_leaves_home_alone(
    cli, tmp_path: Path, pack: str
) -> None:
    local, through_ray = tmp_path / "local", tmp_path / "ray"
    home = Path.home() / ".ray"
    existed = home.exists()
    assert cli("sweep", *SMALL, "--pack", pack, "--out", str(local)).code == 0
    r = cli("sweep", *SMALL, "--pack", pack, "--executor", "ray", "--out", str(through_ray))
    assert r.code == 0, r.err
    pd.testing.assert_frame_equal(numbers(local), numbers(through_ray))
    assert not ray.is_initialized()
    assert home.exists() == existed


@needs_ray
def test_ray_retries_a_killed_worker_from_its_checkpoint(clean: pd.DataFrame, tmp_path: Path) -> None:
    report = KillingDisplay(kill_ray_workers, kill_at=2)
    (outcome,) = sweep_with(tmp_path / "killed", "ray", report)
    assert outcome[1] == "completed"
    assert report.starts[0][1] == 1 and report.starts[1][1] >= 2
    assert "Ray worker died" in report.notes[0]
    pd.testing.assert_frame_equal(clean, numbers(tmp_path / "killed"))


@needs_ray
def test_ray_refuses_gpus_no_node_has_at_once(cli, tmp_path: Path) -> None:
    r = cli("sweep", "--dataset", "synthetic", "--epochs", "1", "--executor", "ray", "--gpus-per-run", "1",
            "--out", str(tmp_path / "o"))  # fmt: skip
    assert r.code == 2
    assert "no Ray node has 1 CPU(s) and 1 GPU(s)" in r.err
    assert not ray.is_initialized()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_asking_for_a_gpu_this_machine_lacks_is_one_line(cli, tmp_path: Path) -> None:
    for args in (["sweep", "--dataset", "synthetic", "--out", str(tmp_path / "o")], ["bench"]):
        r = cli(*args, "--device", "cuda")
        assert r.code == 2 and "torch sees no CUDA GPU on this machine" in r.err
    assert not (tmp_path / "o").exists()


def test_a_worker_whose_node_lacks_the_data_downloads_it_unless_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (cfg,) = expand(SweepConfig(arch=["lenet5"], dataset="mnist", epochs=1), {"mnist": 60_000})
    empty = tmp_path / "node-data"
    offline = Task(cfg=cfg, data_dir=str(empty), checkpoint=str(tmp_path / "c.pt"), device="cpu", threads=1,
                   offline=True)  # fmt: skip
    with pytest.raises(UserError, match="mnist is not in .*node-data"):
        executors.base.load_split(offline)
    # Online, the worker goes to the network: here a mirror on this machine that serves nothing.
    monkeypatch.setenv(MIRROR_ENV, "http://127.0.0.1:9/")
    with pytest.raises(UserError, match="could not download http://127.0.0.1:9/train-images-idx3-ubyte.gz"):
        executors.base.load_split(replace(offline, offline=False))


@needs_ray
def test_ray_resolves_precision_auto_on_the_node_and_records_it(tmp_path: Path) -> None:
    out = tmp_path / "r"
    cfg = SweepConfig(arch=["resnet"], depth=[8], dataset="synthetic", epochs=1, train_subset=500,
                      batch_size=100, device="cpu", out=str(out), executor="ray", threads=1)  # fmt: skip
    cfg.validate()
    plan = prepare(cfg)
    with plan:
        assert plan.runs[0].cfg.precision == "auto"  # not decided by the driver
        ((_, status, _),) = run(plan, KillingDisplay(lambda: None, 0))
    assert status == "completed"
    (row,) = results.read_runs(out).values()
    assert row["precision"] == resolve_precision("auto", torch.device("cpu"))  # what the node ran
    assert row["host"] == socket.gethostname() and row["torch_version"] == torch.__version__  # its word
    (weights,) = (out / "weights").glob("*.pt")
    assert torch.load(weights, weights_only=True)["precision"] == row["precision"]


class ScriptedPool(Pool):
    """A pool whose workers do what a script says, at once: the loop that hands out jobs, alone."""

    def __init__(self, script: dict[str, list[executors.Event]]) -> None:
        super().__init__(["cpu", "cpu"], 1)
        self.script = script
        self.submitted: list[tuple[str, int]] = []

    def submit(self, job: executors.Job, slot: int) -> object:
        self.submitted.append(job.key)
        return job.key

    def wait(self, handles: list[object]) -> list[tuple[object, executors.Event]]:
        return [(h, e) for h in handles for e in self.script[h[0]].pop(0)]  # type: ignore[index]

    def cancel(self, handles: list[object]) -> None:
        pass

    def close(self) -> None:
        pass


class Recorder:
    def __init__(self) -> None:
        self.ends: dict[str, str] = {}
        self.started: list[str] = []

    def start(self, task: Task) -> None:
        self.started.append(task.cfg.run_id)

    def event(self, task: Task, event: object) -> None:
        pass

    def end(self, task: Task, status: str, error: str) -> None:
        self.ends[task.cfg.run_id] = status

    def retry(self, task: Task, reason: str) -> None:
        pass


def test_fail_fast_ends_the_runs_waiting_for_a_retry_interrupted() -> None:
    a, b, c = expand(SweepConfig(arch=["resnet"], depth=[8], seeds=[0, 1, 2], dataset="synthetic", epochs=1), {"synthetic": 200})  # fmt: skip
    jobs = [executors.Job((Task(cfg, None, "", "cpu", 1),)) for cfg in (a, b, c)]
    failed = executors.Report(0, executors.RunEnded(results.Status.FAILED, "ValueError: bad"))
    # a's worker dies (a waits for its second attempt) as b fails: c never starts, a ends interrupted.
    pool = ScriptedPool({a.run_id: [[executors.WorkerCrashed("killed")]], b.run_id: [[failed]]})
    sink = Recorder()
    pool.run(jobs, sink, fail_fast=True)  # type: ignore[arg-type]
    assert sink.ends == {a.run_id: "interrupted", b.run_id: "failed"}
    assert c.run_id not in sink.started and (a.run_id, 2) not in pool.submitted
