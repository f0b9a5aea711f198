"""Past one machine: a Ray cluster of several nodes (Ray's own `Cluster`, each node its own raylet),
a node lost mid-run, the driver killed, and a worker that cannot see the results folder."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from resdepth import results
from resdepth.config import SweepConfig
from resdepth.executors.base import Job, Report, RunEnded, Task, halted, run_job
from resdepth.results import Status
from resdepth.runs import expand

pytestmark = pytest.mark.slow  # minutes of real sweeps: `make test` runs them, `make test-fast` does not

try:
    import ray
except ImportError:
    ray = None

# CI installs the extra and sets RESDEPTH_REQUIRE_RAY, so these fail there instead of skipping.
needs_ray = pytest.mark.skipif(
    ray is None and not os.environ.get("RESDEPTH_REQUIRE_RAY"), reason="the ray extra is not installed"
)
NUMBERS = [c for c in results.METRICS_COLUMNS if c not in ("epoch_seconds", "images_per_second")]
# Four runs of four epochs, one thread each (so every executor computes the same digits).
ARGS = ["--dataset", "synthetic", "--arch", "resnet", "--depth", "8", "--seeds", "0,1,2,3", "--epochs", "4",
        "--train-subset", "400", "--test-subset", "100", "--batch-size", "100", "--threads", "1",
        "--precision", "fp32"]  # fmt: skip


def numbers(out: Path) -> pd.DataFrame:
    return results.read_metrics(out)[NUMBERS].sort_values(["run_id", "epoch"]).reset_index(drop=True)


def sweep(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "resdepth", "sweep", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def wait_for_rows(out: Path, n: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (out / results.METRICS).is_file() and len(results.read_metrics(out)) >= n:
            return
        time.sleep(0.1)
    said = proc.communicate(timeout=60)[0] if proc.poll() is not None else "(still running)"
    raise AssertionError(f"the sweep did not log {n} rows (exit code {proc.poll()}): {said}")


@needs_ray
def test_a_sweep_across_three_nodes_survives_a_lost_node_and_a_killed_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray.cluster_utils import Cluster

    local = tmp_path / "local"
    assert subprocess.run([sys.executable, "-m", "resdepth", "sweep", *ARGS, "--out", str(local)],
                          capture_output=True, timeout=600).returncode == 0  # fmt: skip
    # A cluster of our own, its token in the environment (not ~/.ray), which the drivers inherit.
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    # Every node and driver on the loopback address (Ray's switch for one-machine clusters), never
    # on this machine's network interface.
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    node = {"num_cpus": 1, "object_store_memory": 100 << 20, "node_ip_address": "127.0.0.1"}  # loopback only
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        workers = [cluster.add_node(**node) for _ in range(2)]
        cluster.wait_for_nodes()
        out = tmp_path / "cluster"
        args = [*ARGS, "--executor", "ray", "--address", cluster.address, "--out", str(out)]
        first = sweep(*args)
        wait_for_rows(out, 2, first)
        cluster.remove_node(workers[0])  # a node lost mid-run: its run goes to another node
        wait_for_rows(out, 9, first)
        first.kill()  # and then the driver, kill -9, mid-sweep
        said, _ = first.communicate(timeout=60)
        assert "resumes from its last checkpoint" in said, said
        assert len(results.read_metrics(out)) < 16
        again = subprocess.run([sys.executable, "-m", "resdepth", "sweep", *args], capture_output=True,
                               text=True, timeout=600)  # fmt: skip
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        cluster.shutdown()
    pd.testing.assert_frame_equal(numbers(out), numbers(local))  # nothing lost, nothing twice
    runs = results.read_runs(out)
    assert [r["status"] for r in runs.values()] == ["completed"] * 4
    assert len({r["node"] for r in runs.values()}) >= 2  # trained on more than one node


def test_a_worker_that_cannot_see_the_results_folder_halts_the_sweep_in_one_line(tmp_path: Path) -> None:
    (cfg,) = expand(
        SweepConfig(arch=["resnet"], depth=[8], dataset="synthetic", epochs=1), {"synthetic": 2000}
    )
    shared, elsewhere = tmp_path / "shared", tmp_path / "node-local"
    shared.mkdir()
    nonce = results.write_nonce(shared)
    task = Task(cfg, None, str(elsewhere / "checkpoints" / "x.pt"), "cpu", 1, out=str(elsewhere), nonce=nonce)
    reports: list[Report] = []
    run_job(Job((task,)), None, reports.append, node="abc123")
    assert [type(r.event) for r in reports] == [RunEnded]  # it trained nothing
    ended = reports[0].event
    # Not the run's failure: the sweep stops (the driver raises it, `halted`), the run resumes later.
    assert isinstance(ended, RunEnded) and ended.status == "interrupted" and ended.halt
    assert ended.error.startswith("node ") and "(abc123) cannot see the results folder" in ended.error
    assert str(elsewhere) in ended.error and "\n" not in ended.error
    # The driver, which sees its token in the shared folder, gives the node's line as it is.
    assert str(halted(replace(task, out=str(shared)), ended.error)) == ended.error
    reports.clear()
    run_job(Job((replace(task, out=str(shared), checkpoint=str(shared / "c.pt")),)), None, reports.append)
    assert reports[-1].event == RunEnded(Status.COMPLETED, "") and (shared / "c.pt").is_file()
    assert torch.load(shared / "c.pt", weights_only=True)["epoch"] == 1
    (shared / results.NONCE).unlink()  # the driver's own token gone: said so, not blamed on a node
    lost = replace(task, out=str(shared))
    assert str(halted(lost, ended.error)).startswith(f"{shared / results.NONCE} was deleted or replaced")
