"""He et al. §4.2's augmentation on whole batches: zero padding, random 32x32 crop, random flip.

One gather does crop and flip for the batch at once, on whatever device the images live on, so there
is no per-sample Python loop and no worker process. Padding is in uint8 pixel space (black), before
normalisation, as torchvision's RandomCrop(padding=4) followed by Normalize does it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def crop_flip(
    images: torch.Tensor, generator: torch.Generator, pad: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random crops of uint8 images (N, C, H, W) padded by `pad` pixels, and random flips; also
    returns offsets (N, 2) and flips (N,)."""
    n, c, h, w = images.shape
    device = images.device
    padded = F.pad(images, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator, device=device)
    flips = torch.rand(n, generator=generator, device=device) < 0.5
    rows = offsets[:, 0:1] + torch.arange(h, device=device)  # (N, H)
    cols = torch.arange(w, device=device).expand(n, w)
    cols = torch.where(flips[:, None], cols.flip(1), cols) + offsets[:, 1:2]  # (N, W)
    index = (rows[:, :, None] * (w + 2 * pad) + cols[:, None, :]).reshape(n, 1, h * w)
    out = padded.reshape(n, c, -1).gather(2, index.expand(n, c, h * w))
    return out.reshape(n, c, h, w), offsets, flips


class Normalizer:
    """uint8 -> float, minus the training split's per-channel mean, over its std."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device | str) -> None:
        self.scale = (1.0 / (255.0 * torch.tensor(std, device=device))).view(1, -1, 1, 1)
        self.shift = (torch.tensor(mean, device=device) / torch.tensor(std, device=device)).view(1, -1, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images.float() * self.scale - self.shift
