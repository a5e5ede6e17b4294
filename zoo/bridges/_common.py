"""Helpers shared by the timm and torchvision bridges: input-conv adaptation, size checks, paper years.

Nothing here imports timm or torchvision; torch is imported inside the functions that need it, so that
registering the bridges stays free.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from zoo.messages import first_line

_ARXIV = re.compile(r"(?:arxiv[:/.](?:org/)?(?:abs/|pdf/)?)(\d{2})(\d{2})\.\d{4,5}", re.I)


def arxiv_year(text: str | None) -> int | None:
    """The year of an arXiv identifier or URL (``"arXiv:1512.03385"`` -> 2015); ``None`` if there is none."""
    if not text:
        return None
    m = _ARXIV.search(text)
    if m is None or not 1 <= int(m.group(2)) <= 12:
        return None
    return 2000 + int(m.group(1))


def pair(name: str, img_size: Any) -> tuple[int, int]:
    """``img_size`` as ``(H, W)``: an int or a pair of positive ints; anything else is a clear error."""
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"{name}: img_size must be a positive int or (height, width), got {img_size!r}")
    return size  # type: ignore[return-value]


def adapt_input_conv(model, in_chans: int, name: str) -> None:
    """Give ``model``'s first ``Conv2d`` ``in_chans`` input channels, in place, keeping its module path.

    The new kernel is made from the RGB one as timm's ``adapt_input_conv`` does: one channel is the sum of the
    three (a grey image then gives what its RGB copy would), more channels repeat the RGB kernel and rescale
    by ``3 / in_chans`` (so a constant input gives the same activations). The parameter names are unchanged, so a
    state dict saved from the adapted model loads back into it.
    """
    import torch
    import torch.nn as nn

    if not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"{name}: in_chans must be a positive int, got {in_chans!r}")
    found = next(((path, m) for path, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    if found is None:
        raise ValueError(f"{name}: in_chans={in_chans} needs a first Conv2d to adapt and the model has none")
    path, conv = found
    if conv.in_channels != 3 or conv.groups != 1:
        raise ValueError(
            f"{name}: cannot adapt the first conv '{path}' ({conv.in_channels} input channels, groups={conv.groups})"
            f" to in_chans={in_chans}; only a 3-channel, ungrouped first conv is adapted"
        )
    if in_chans == 3:
        return
    new = nn.Conv2d(
        in_chans,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        w = conv.weight  # out x 3 x kh x kw
        if w.device.type != "meta":
            if in_chans == 1:
                new.weight.copy_(w.sum(dim=1, keepdim=True))
            else:
                reps = -(-in_chans // 3)
                new.weight.copy_(w.repeat(1, reps, 1, 1)[:, :in_chans] * (3 / in_chans))
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
    parent = model.get_submodule(path.rsplit(".", 1)[0]) if "." in path else model
    setattr(parent, path.rsplit(".", 1)[-1], new)


def check_forward(model, name: str, in_chans: int, size: tuple[int, int], why: str) -> None:
    """Run one tiny forward at ``size`` to check the model takes it, so a too-small input fails at creation.

    Used only where the source documents a larger minimum (or default) size and the model has no size
    parameter of its own: most CNNs end in global pooling and accept smaller inputs, some do not.
    """
    import torch

    param = next(model.parameters(), None)
    if param is None or param.device.type == "meta":
        return
    was_training = model.training
    model.eval()  # batch 1 in training mode would trip BatchNorm; eval also leaves running stats alone
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_chans, *size, device=param.device, dtype=param.dtype))
    except Exception as exc:
        first = first_line(str(exc)) or type(exc).__name__
        raise ValueError(
            f"{name} does not run at img_size={size[0] if size[0] == size[1] else size} ({why}): {first}; "
            "use a larger img_size (resize the data) or pick another model"
        ) from exc
    finally:
        model.train(was_training)


def make_builder(build: Callable[..., Any], name: str, doc: str) -> Callable[..., Any]:
    """A registry builder for one bridged model: zoo's uniform keywords, the rest passed on to the source."""

    def builder(
        *,
        num_classes: int | None = None,
        in_chans: int = 3,
        img_size: int | tuple[int, int] | None = None,
        drop_rate: float | None = None,
        **kwargs: Any,
    ):
        return build(name, num_classes=num_classes, in_chans=in_chans, img_size=img_size, drop_rate=drop_rate, **kwargs)

    builder.__name__ = builder.__qualname__ = name.replace(".", "_")
    builder.__doc__ = doc
    return builder
