"""Real datasets held in memory as uint8 tensors, and their batched augmentation."""

from resdepth.data.sources import DATASETS
from resdepth.data.store import Dataset, load, resolve_root

__all__ = ["DATASETS", "Dataset", "load", "resolve_root"]
