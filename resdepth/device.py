"""Which device a run trains on, in which precision, and how the figures name that hardware."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

import torch
from torch import nn

from resdepth.errors import UserError


def pick_device(name: str) -> torch.device:
    """The device `name` means on this machine; one that is not here is a one-line error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"--device {name}: torch sees no CUDA GPU on this machine "
            "(with --executor ray, --device auto gives runs the cluster's GPUs)"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name}: this machine has no Apple MPS device")
    return device


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_bf16_instructions() -> str:
    """The CPU's instructions for bf16 matrix products, the strongest it has: `AMX`, `AVX512-BF16`,
    or "" for none (bf16 is then emulated, several times slower than fp32)."""
    flags = _cpuinfo()
    if "amx_bf16" in flags:
        return "AMX"
    return "AVX512-BF16" if "avx512_bf16" in flags else ""


def cpu_runs_bf16_fast() -> bool:
    """Where bf16 training beats fp32 on a CPU: with AMX, and less so with AVX512-BF16 alone
    (both measured in docs/speed.md)."""
    return cpu_bf16_instructions() != ""


def resolve_precision(requested: str, device: torch.device) -> str:
    """auto: bf16 where it runs fast (CUDA capability >= 8.0, CPUs with AMX or AVX512-BF16), else fp32."""
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_runs_bf16_fast() else "fp32"
    return "fp32"


def cpu_model() -> str:
    lines = _cpuinfo().splitlines()
    found = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    return found or platform.processor() or platform.machine() or "CPU"


def device_name(device: torch.device) -> str:
    """The card or processor the figures belong to, as a timing should name it."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        # the vector instructions PyTorch's kernels use, and bf16's, which set a CPU's speed more
        # than its model name does (one "AMD EPYC" here had AVX2 only, another AVX512-BF16)
        isa = [torch.backends.cpu.get_cpu_capability(), cpu_bf16_instructions()]
        named = ", ".join(i for i in isa if i and i != "DEFAULT")  # DEFAULT: no vector kernels
        return f"{cpu_model()}{f' ({named})' if named else ''}, {torch.get_num_threads()} threads"
    return str(device)


def provenance(device: torch.device, node: str = "") -> dict[str, str]:
    """What trains a run, as the node that trains it sees itself: the runs.csv columns
    `results.PROVENANCE`, so that differing numbers can be traced to the machine. `node`: the Ray
    node's id, where several nodes may share a host."""
    return {
        "host": socket.gethostname(),
        "node": node,
        "cpu": cpu_model(),
        "cpu_bf16": "yes" if cpu_runs_bf16_fast() else "no",
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "",
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
    }


def on_device(model: nn.Module, device: torch.device) -> nn.Module:
    """Channels-last on `device`; on CUDA, cuDNN benchmark mode, since every batch has one shape
    and timing the convolution algorithms once pays back within the first epoch."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return model.to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1
