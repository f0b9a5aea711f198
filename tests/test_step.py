"""Every step engine computes the paper's SGD step: eager, torch.compile, CUDA graphs (on a GPU).

The CUDA tests skip on machines without a GPU; they ran on an H100 (see docs/speed.md).
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from resdepth.config import CROP_PADDING, SweepConfig
from resdepth.data.augment import Normalizer, crop_flip
from resdepth.device import on_device
from resdepth.models import NetSpec, build_model
from resdepth.runs import expand
from resdepth.step import WARM_STEPS, Engine, Stepper, make_optimizer, update

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
Steps = tuple[list[float], list[int], list[list[torch.Tensor]]]  # losses, wrong counts, weights per step
BATCH = 32
# Full batches, then an epoch's smaller last batch, after the graph is captured; lr drops twice.
SIZES = [BATCH] * (WARM_STEPS + 2) + [BATCH - 8] + [BATCH] * 4
LRS = [0.1] * (WARM_STEPS + 3) + [0.01] * 2 + [0.0] * 2


def fresh_net(dev: torch.device) -> tuple[nn.Module, torch.optim.SGD, Normalizer]:
    """ResNet-8 from seed 0, its SGD and a normaliser: the same start for every engine."""
    cfg = expand(SweepConfig(arch=["resnet"], depth=[8], epochs=1), {"cifar10": 1})[0]
    torch.manual_seed(0)
    model = on_device(build_model(NetSpec("resnet", 8)), dev)
    return (
        model,
        make_optimizer(model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay),
        Normalizer((0.5,) * 3, (0.25,) * 3, dev),
    )


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed uint8 batches of SIZES images with random labels."""
    g = torch.Generator().manual_seed(1)
    return [(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
             torch.randint(0, 10, (n,), generator=g)) for n in SIZES]  # fmt: skip


def run_steps(engine: Engine, device: str, precision: str = "fp32") -> Steps:
    """SIZES steps of a ResNet-8 from one init on fixed batches; the losses, errors and final weights."""
    dev = torch.device(device)
    model, optimizer, normalize = fresh_net(dev)
    step = Stepper(model, optimizer, normalize, precision, engine, BATCH)
    aug = torch.Generator(device=dev).manual_seed(2)
    losses, wrongs, snapshots = [], [], []
    for (x, y), lr in zip(batches(), LRS, strict=True):
        step.set_lr(lr)
        loss, wrong = step(x.to(dev), y.to(dev), aug)
        losses.append(loss.item())
        wrongs.append(int(wrong))
        snapshots.append([p.detach().cpu().clone() for p in model.parameters()])
    return losses, wrongs, snapshots


def assert_same_steps(a: Steps, b: Steps, rtol: float) -> None:
    """Same losses, same errors, same weights; float rounding differs (fused kernels reduce in another
    order) and SGD on random labels amplifies it, about 2x a step, so late weights get more room."""
    torch.testing.assert_close(torch.tensor(a[0]), torch.tensor(b[0]), rtol=rtol, atol=rtol)
    assert sum(abs(x - y) for x, y in zip(a[1], b[1], strict=True)) <= 2  # a borderline argmax may flip
    for step, atol in ((0, rtol / 10), (-1, 10 * rtol)):
        for pa, pb in zip(a[2][step], b[2][step], strict=True):
            torch.testing.assert_close(pa, pb, rtol=0, atol=atol)


def test_eager_stepper_is_one_plain_step_and_follows_the_lr() -> None:
    losses, _, snapshots = run_steps(Engine(cuda_graphs=False), "cpu")
    assert len(losses) == len(SIZES) and all(0.5 < loss < 5 for loss in losses)
    # lr 0 from the second-to-last step on: the weights stop moving though momentum is not zero.
    for before, after in zip(snapshots[-3], snapshots[-1], strict=True):
        assert torch.equal(before, after)
    assert any(not torch.equal(a, b) for a, b in zip(snapshots[0], snapshots[-3], strict=True))
    # The stepper's first step is exactly a plain crop-flip + update of the same net and batch.
    model, optimizer, normalize = fresh_net(torch.device("cpu"))
    x, y = batches()[0]
    cropped = crop_flip(x, torch.Generator().manual_seed(2), CROP_PADDING)[0]
    loss, _ = update(model, optimizer, cropped, y, normalize, "fp32")
    assert loss.item() == losses[0]


@pytest.mark.slow
def test_compiled_steps_match_eager_steps_on_cpu() -> None:
    pytest.importorskip("torch._inductor")
    assert_same_steps(run_steps(Engine(compile=True), "cpu"), run_steps(Engine(), "cpu"), rtol=1e-3)


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_graph_steps_match_eager_steps(precision: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # compare fp32 as fp32
    graphed = run_steps(Engine(cuda_graphs=True), "cuda", precision)
    eager = run_steps(Engine(cuda_graphs=False), "cuda", precision)
    assert_same_steps(graphed, eager, rtol=1e-3 if precision == "fp32" else 2e-2)
    # Replays read the refilled lr: at lr 0 the weights stay put inside the graph too.
    for before, after in zip(graphed[2][-3], graphed[2][-1], strict=True):
        assert torch.equal(before, after)


@needs_cuda
def test_compiled_and_graphed_steps_match_eager_steps_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    both = run_steps(Engine(compile=True, cuda_graphs=True), "cuda")
    assert_same_steps(both, run_steps(Engine(cuda_graphs=False), "cuda"), rtol=1e-3)


@needs_cuda
def test_cuda_sweep_with_two_runs_per_gpu_matches_one_at_a_time(cli, tmp_path) -> None:
    common = ("sweep", "--dataset", "synthetic", "--arch", "plain,resnet", "--depth", "8", "--epochs", "2",
              "--device", "cuda", "--precision", "fp32")  # fmt: skip
    r = cli(*common, "--jobs", "2", "--runs-per-gpu", "2", "--out", str(tmp_path / "pool"))
    assert r.code == 0, r.err
    r = cli(*common, "--no-cuda-graphs", "--out", str(tmp_path / "eager"))
    assert r.code == 0, r.err
    pool = pd.read_csv(tmp_path / "pool" / "metrics.csv").sort_values(["run_id", "epoch"])
    eager = pd.read_csv(tmp_path / "eager" / "metrics.csv").sort_values(["run_id", "epoch"])
    assert len(pool) == 4 and list(pool.run_id) == list(eager.run_id)
    # Same recipe, same data order: only TF32 rounding and cuDNN's algorithm choices differ.
    for col in ("train_loss", "test_loss"):
        torch.testing.assert_close(torch.tensor(pool[col].values), torch.tensor(eager[col].values), rtol=0.05,
                                   atol=0.05)  # fmt: skip
    runs = pd.read_csv(tmp_path / "pool" / "runs.csv")
    assert set(runs.device) == {"cuda:0"} and set(runs.status) == {"completed"}


def test_cuda_graphs_on_a_machine_without_cuda_is_one_line(cli, tmp_path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = cli("sweep", "--dataset", "synthetic", "--depth", "8", "--epochs", "1", "--cuda-graphs",
            "--out", str(tmp_path))  # fmt: skip
    assert r.code == 2 and "--cuda-graphs needs a CUDA device" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "metrics.csv").exists()
