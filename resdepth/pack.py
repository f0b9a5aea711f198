"""`--pack K`: K runs that differ only in their seed train as one model, K times wider.

Each run keeps its own model, optimizer, schedule, data order, augmentation and checkpoint
(`resdepth.train.Run`); the pack is a working copy of all of them that one SGD step moves at once.
It is made from the runs' state when they start (fresh or resumed), and hands the state back into
each run's own model and optimizer at the end of every epoch, before the runs are evaluated and
their checkpoints written: so a packed run's checkpoint is the one it would have written alone, and
it can resume packed, alone, or in another pack.

How a net is packed is `resdepth.models.packed`; the per-run learning rates are `step.PackedSGD`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from resdepth.device import on_device
from resdepth.models.packed import PackedNet, pack_tensors, unpack_tensor
from resdepth.runs import RunConfig
from resdepth.step import MOMENTUM, PackedSGD


class Pack:
    """The packed model and optimizer of K runs, made from their own and given back to them."""

    def __init__(
        self,
        models: Sequence[nn.Module],
        optimizers: Sequence[torch.optim.Optimizer],
        cfg: RunConfig,
        device: torch.device,
    ) -> None:
        self.models, self.optimizers = list(models), list(optimizers)
        self.model = on_device(PackedNet(self.models), device)
        self.optimizer = PackedSGD(self.model.parameters(), len(self.models), cfg.momentum, cfg.weight_decay)
        self.names = [name for name, _ in self.models[0].named_parameters()]
        packed = dict(self.model.net.named_parameters())  # type: ignore[union-attr]
        self.params = [packed[name] for name in self.names]
        self.run_params = [dict(m.named_parameters()) for m in self.models]
        for name, p in zip(self.names, self.params, strict=True):
            buffers = [
                opt.state[mine[name]].get(MOMENTUM)
                for opt, mine in zip(self.optimizers, self.run_params, strict=True)
            ]
            if all(b is not None for b in buffers):  # a resumed run has them; a fresh one not yet
                self.optimizer.state[p][MOMENTUM] = pack_tensors(buffers).to(p.device)  # type: ignore[arg-type]

    @torch.no_grad()
    def unpack(self, lrs: Sequence[float]) -> None:
        """Give each run its weights, batch-norm statistics and momentum back, and its last lr."""
        self.model.unpack_into(self.models)  # type: ignore[operator]
        runs = len(self.models)
        for k, (opt, mine) in enumerate(zip(self.optimizers, self.run_params, strict=True)):
            for name, p in zip(self.names, self.params, strict=True):
                buffer = self.optimizer.state[p].get(MOMENTUM)
                if buffer is not None:
                    opt.state[mine[name]][MOMENTUM] = unpack_tensor(buffer, runs, k).clone()
            for group in opt.param_groups:
                group["lr"] = lrs[k]
