"""Where each dataset comes from: official addresses, checksums and the file names users already have."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Remote:
    """One file to fetch: `base_url + name`, checked against the publisher's md5."""

    base_url: str
    name: str
    md5: str


CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"
# The mirror torchvision uses since the original MNIST address stopped serving reliably.
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"

REMOTES: dict[str, tuple[Remote, ...]] = {
    "cifar10": (Remote(CIFAR_URL, "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
    "cifar100": (Remote(CIFAR_URL, "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),),
    "mnist": (
        Remote(MNIST_URL, "train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        Remote(MNIST_URL, "train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        Remote(MNIST_URL, "t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        Remote(MNIST_URL, "t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ),
}
# The folder an archive unpacks to (also torchvision's layout), and MNIST's torchvision folder.
CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
MNIST_FOLDER = "MNIST/raw"
DATASETS = ("cifar10", "cifar100", "mnist", "synthetic")
# (channels, image size, classes) of each dataset as resdepth feeds it (MNIST padded to 32x32).
SHAPES = {"cifar10": (3, 32, 10), "cifar100": (3, 32, 100), "mnist": (1, 32, 10), "synthetic": (3, 32, 10)}
