"""Layers shared by several families: conv-norm-activation, squeeze-excite, stochastic depth, size checks."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn

# The one small-input rule: an image narrower than this many pixels (the shorter side) gets each family's
# small-input layout (a stride-1 stem, a smaller patch, output stride 16) unless the caller says otherwise.
SMALL_INPUT = 64

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "silu": lambda: nn.SiLU(inplace=True),
    "hardswish": lambda: nn.Hardswish(inplace=True),
    "hardsigmoid": lambda: nn.Hardsigmoid(inplace=True),
    "identity": nn.Identity,
}


def get_act(act: str | Callable[[], nn.Module] | None) -> nn.Module:
    """An activation module from a name (``"relu"``, ``"gelu"``, ...), a module class or factory, or ``None``."""
    if act is None:
        return nn.Identity()
    if isinstance(act, str):
        try:
            return _ACTIVATIONS[act.lower()]()
        except KeyError:
            raise ValueError(f"unknown activation '{act}'; accepted: {', '.join(_ACTIVATIONS)}") from None
    return act()


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor``, never going down by more than 10% (MobileNet, EfficientNet)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def check_img_size(name: str, img_size: int | tuple[int, int], min_size: int) -> int:
    """Validate ``img_size`` at creation so a too-small input fails here, not deep inside ``forward``.

    ``zoo.create`` has already checked its type (``zoo.registry.check_uniform_keywords``); this also guards builders
    called directly."""
    sizes = [img_size] if isinstance(img_size, int) else list(img_size) if isinstance(img_size, (tuple, list)) else []
    if len(sizes) not in (1, 2) or not all(isinstance(s, int) and not isinstance(s, bool) for s in sizes):
        raise TypeError(f"{name}: img_size must be an int or a pair of ints (H, W); got {img_size!r}")
    size = min(sizes)
    if size < min_size:
        raise ValueError(
            f"{name} needs img_size >= {min_size} (got {img_size}); upsample the input or pick another model"
        )
    return size


def is_small_input(img_size: int | tuple[int, int]) -> bool:
    """Whether ``img_size`` (an int or ``(H, W)``) falls below :data:`SMALL_INPUT` on its shorter side."""
    return (img_size if isinstance(img_size, int) else min(img_size)) < SMALL_INPUT


def choose_stem(
    name: str,
    img_size: int | tuple[int, int],
    small_stem: bool | None,
    min_size: dict[bool, int],
    small_label: str = "small-input",
) -> bool:
    """Pick the small-input stem (``True``) or the ImageNet stem (``False``) and check the image fits it.

    Args:
        name: the model name used in error messages.
        img_size: the input size, an int or ``(H, W)``.
        small_stem: the caller's choice; ``None`` picks the small stem below :data:`SMALL_INPUT` px.
        min_size: the smallest image each layout accepts, keyed by ``small``.
        small_label: how errors name the small layout (``"small-input"``, ``"CIFAR"``).
    """
    size = check_img_size(name, img_size, 1)
    small = size < SMALL_INPUT if small_stem is None else bool(small_stem)
    layout = f"{small_label} (small_stem=True)" if small else "ImageNet (small_stem=False)"
    check_img_size(f"{name}'s {layout} layout", img_size, min_size[small])
    return small


class ConvNormAct(nn.Sequential):
    """Conv2d -> BatchNorm2d -> activation, with 'same' padding for odd kernels (torchvision's Conv2dNormActivation)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: str | Callable[[], nn.Module] | None = "relu",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__(
            nn.Conv2d(in_chs, out_chs, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_chs, eps=bn_eps, momentum=bn_momentum),
            get_act(act),
        )
        self.out_channels = out_chs


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation (Hu et al., 2018): channel gates from global context."""

    def __init__(
        self,
        chs: int,
        rd_chs: int,
        act: str | Callable[[], nn.Module] = "relu",
        gate: str | Callable[[], nn.Module] = "sigmoid",
    ) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(chs, rd_chs, 1)
        self.act = get_act(act)
        self.fc2 = nn.Conv2d(rd_chs, chs, 1)
        self.gate = get_act(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # N x C x 1 x 1
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class DropPath(nn.Module):
    """Stochastic depth (Huang et al., 2016): drop whole residual branches per sample while training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class InvertedResidual(nn.Module):
    """The inverted residual with linear bottleneck (MobileNetV2, Sandler et al., 2018), also called MBConv.

    1x1 expand (skipped when ``exp_chs == in_chs``) -> k x k depthwise -> optional squeeze-excite -> 1x1 linear
    projection, plus the input when the shapes allow. MobileNetV3 adds SE with a hard-sigmoid gate; EfficientNet
    adds SE with a sigmoid gate and stochastic depth. Sub-modules are named as in torchvision (``block.i``).

    Args:
        exp_chs: channels inside the block (``in_chs`` times the expansion ratio, rounded by the caller).
        se_chs: squeeze-excite bottleneck channels; 0 for no SE.
        drop_path: stochastic-depth probability of the residual branch.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        exp_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        act: str | Callable[[], nn.Module] = "relu6",
        se_chs: int = 0,
        se_act: str | Callable[[], nn.Module] = "relu",
        se_gate: str | Callable[[], nn.Module] = "sigmoid",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        norm = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        layers: list[nn.Module] = []
        if exp_chs != in_chs:
            layers.append(ConvNormAct(in_chs, exp_chs, 1, act=act, **norm))  # N x exp x H x W
        layers.append(ConvNormAct(exp_chs, exp_chs, kernel_size, stride, groups=exp_chs, act=act, **norm))
        if se_chs:
            layers.append(SqueezeExcite(exp_chs, se_chs, act=se_act, gate=se_gate))
        layers.append(ConvNormAct(exp_chs, out_chs, 1, act=None, **norm))  # N x out x H/stride x W/stride
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_chs == out_chs
        self.drop_path = DropPath(drop_path) if self.use_residual else nn.Identity()
        self.out_channels = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_residual:
            return x + self.drop_path(self.block(x))
        return self.block(x)


def reduce_strides(strides: list[int], output_stride: int) -> list[int]:
    """Set the earliest stride-2 layers to stride 1 until the product of ``strides`` is at most ``output_stride``.

    How the ImageNet layouts (output stride 32) become small-input layouts: output stride 16 makes the stem
    stride 1, output stride 8 also the first downsampling stage, as the CIFAR versions of these networks do.
    """
    strides = list(strides)
    total = 1
    for s in strides:
        total *= s
    for i, s in enumerate(strides):
        if total <= output_stride:
            break
        if s > 1:
            strides[i] = 1
            total //= s
    return strides


def resolve_output_stride(name: str, img_size: int | tuple[int, int], output_stride: int | None) -> int:
    """The total downsampling of a 32x ImageNet layout: ``output_stride`` if given (8, 16 or 32), else 32, or 16
    below :data:`SMALL_INPUT` pixels. Refuses an image smaller than the stride (no pixel would reach the head)."""
    size = check_img_size(name, img_size, 1)
    if output_stride is None:
        output_stride = 32 if size >= SMALL_INPUT else 16
    elif output_stride not in (8, 16, 32):
        nearest = min((8, 16, 32), key=lambda s: abs(s - output_stride))
        raise ValueError(f"{name}: output_stride must be one of 8, 16, 32, got {output_stride}; try {nearest}")
    check_img_size(f"{name} at output_stride={output_stride}", img_size, output_stride)
    return output_stride


def init_weights_like_torchvision(model: nn.Module, linear: str = "normal") -> None:
    """torchvision's initialisation for its mobile CNNs, so training from scratch behaves like its models: Kaiming
    (fan-out) convolutions, unit BatchNorm, zero biases; Linear ``"normal"`` (std 0.01, MobileNet) or ``"uniform"``
    (+-1/sqrt(out_features), EfficientNet)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear == "uniform":
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
            else:
                nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
