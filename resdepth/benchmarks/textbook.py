"""The reference: how most tutorials train a CIFAR-10 ResNet, kept here only to be measured against.

Per-sample augmentation in a Dataset (what torchvision's RandomCrop(32, padding=4) +
RandomHorizontalFlip + ToTensor + Normalize do, written in plain torch), a DataLoader with two workers
as in PyTorch's CIFAR-10 tutorial, fp32, NCHW, a default SGD step, and `loss.item()` every step.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class AugmentedImages(Dataset[tuple[torch.Tensor, int]]):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels
        self.mean = torch.tensor(CIFAR_MEAN).view(3, 1, 1)
        self.std = torch.tensor(CIFAR_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = F.pad(self.images[i], (4, 4, 4, 4))
        top, left = random.randint(0, 8), random.randint(0, 8)
        img = img[:, top : top + 32, left : left + 32]
        if random.random() < 0.5:
            img = img.flip(-1)
        return (img.float() / 255 - self.mean) / self.std, int(self.labels[i])


def batches(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled batches, one DataLoader epoch after another."""
    loader = DataLoader(
        AugmentedImages(images, labels),
        batch_size=batch_size,
        shuffle=True,
        num_workers=2,
        drop_last=True,
        persistent_workers=True,
    )
    while True:
        yield from loader


def step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()
