"""The classic networks of the course notes, exact to their originals at their original input size.

Each is an `nn.Sequential` of named layers, so `describe` lists them layer by layer.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from resdepth.errors import InvalidNet


def _conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def lenet5(num_classes: int = 10, in_channels: int = 1, input_size: int = 32) -> nn.Sequential:
    """LeCun et al. 1998: two 5x5 convs with average pooling, then 120-84-10 (61,706 parameters), tanh."""
    act = nn.Tanh
    side = _conv_out(_conv_out(_conv_out(_conv_out(input_size, 5), 2, 2), 5), 2, 2)
    if side < 1:
        raise InvalidNet(f"lenet5 needs inputs of at least 16 px, got {input_size}")
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(in_channels, 6, 5),
            act1=act(),
            pool1=nn.AvgPool2d(2),
            conv2=nn.Conv2d(6, 16, 5),
            act2=act(),
            pool2=nn.AvgPool2d(2),
            flatten=nn.Flatten(),
            fc1=nn.Linear(16 * side * side, 120),
            act3=act(),
            fc2=nn.Linear(120, 84),
            act4=act(),
            fc3=nn.Linear(84, num_classes),
        )
    )


def alexnet(num_classes: int = 1000, in_channels: int = 3, input_size: int = 227) -> nn.Sequential:
    """Krizhevsky et al. 2012 as one tower (62,378,344 parameters at 1000 classes).

    The adaptive pool is the identity at 227 px and keeps the 6x6x256 classifier input elsewhere.
    """
    if input_size < 63:
        raise InvalidNet(f"alexnet needs inputs of at least 63 px, got {input_size}")
    lrn = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(in_channels, 96, 11, stride=4),
            relu1=nn.ReLU(inplace=True),
            norm1=nn.LocalResponseNorm(**lrn),  # type: ignore[arg-type]
            pool1=nn.MaxPool2d(3, stride=2),
            conv2=nn.Conv2d(96, 256, 5, padding=2),
            relu2=nn.ReLU(inplace=True),
            norm2=nn.LocalResponseNorm(**lrn),  # type: ignore[arg-type]
            pool2=nn.MaxPool2d(3, stride=2),
            conv3=nn.Conv2d(256, 384, 3, padding=1),
            relu3=nn.ReLU(inplace=True),
            conv4=nn.Conv2d(384, 384, 3, padding=1),
            relu4=nn.ReLU(inplace=True),
            conv5=nn.Conv2d(384, 256, 3, padding=1),
            relu5=nn.ReLU(inplace=True),
            pool5=nn.MaxPool2d(3, stride=2),
            avgpool=nn.AdaptiveAvgPool2d(6),
            flatten=nn.Flatten(),
            drop6=nn.Dropout(0.5),
            fc6=nn.Linear(256 * 6 * 6, 4096),
            relu6=nn.ReLU(inplace=True),
            drop7=nn.Dropout(0.5),
            fc7=nn.Linear(4096, 4096),
            relu7=nn.ReLU(inplace=True),
            fc8=nn.Linear(4096, num_classes),
        )
    )


VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def vgg16(num_classes: int = 1000, in_channels: int = 3, input_size: int = 224) -> nn.Sequential:
    """Simonyan & Zisserman 2015, configuration D: 13 3x3 convs + 3 linear layers.

    At 224 px it is the original (138,357,544 parameters). At CIFAR scale (<= 64 px) it is the
    BatchNorm variant with a 512-wide classifier: the original's 4096-wide layers on a 1x1x512 map do
    not train from scratch on CIFAR-10 without BN, and would hold most of the parameters.
    """
    if input_size < 32:
        raise InvalidNet(f"vgg16 needs inputs of at least 32 px, got {input_size}")
    small = input_size <= 64
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    in_ch = in_channels
    for s, (channels, convs) in enumerate(VGG16_STAGES, start=1):
        for c in range(1, convs + 1):
            layers[f"conv{s}_{c}"] = nn.Conv2d(in_ch, channels, 3, padding=1, bias=not small)
            if small:
                layers[f"bn{s}_{c}"] = nn.BatchNorm2d(channels)
            layers[f"relu{s}_{c}"] = nn.ReLU(inplace=True)
            in_ch = channels
        layers[f"pool{s}"] = nn.MaxPool2d(2, stride=2)
    side = input_size // 32 if small else 7
    hidden = 512 if small else 4096
    if not small:
        layers["avgpool"] = nn.AdaptiveAvgPool2d(7)
    layers["flatten"] = nn.Flatten()
    layers["fc6"] = nn.Linear(512 * side * side, hidden)
    layers["relu6"] = nn.ReLU(inplace=True)
    layers["drop6"] = nn.Dropout(0.5)
    layers["fc7"] = nn.Linear(hidden, hidden)
    layers["relu7"] = nn.ReLU(inplace=True)
    layers["drop7"] = nn.Dropout(0.5)
    layers["fc8"] = nn.Linear(hidden, num_classes)
    net = nn.Sequential(layers)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net
