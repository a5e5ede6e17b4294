"""``zoo.summary``: per-layer table, parameters, FLOPs and activation memory at an input size.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode``: a multiply-add counts as **2** FLOPs
(fvcore, thop and ptflops report multiply-adds, i.e. half these figures), and attention computed through
``scaled_dot_product_attention`` is included. Element-wise work (activations, normalisation, pooling) is not
counted, as in every FLOP counter people quote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from zoo.comparison.tables import format_number, render_table

# ---------------------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------------------


@dataclass
class LayerInfo:
    """One row of a summary: a module, its output shape and its own parameters (with its children's)."""

    name: str
    type: str
    depth: int
    output_shape: tuple[int, ...] | None
    params: int

    def to_dict(self) -> dict[str, Any]:
        shape = list(self.output_shape) if self.output_shape is not None else None
        return {"name": self.name, "type": self.type, "depth": self.depth, "output_shape": shape, "params": self.params}


@dataclass
class Summary:
    """What ``zoo.summary`` returns; ``print()`` it for a torchinfo-like table."""

    name: str
    input_size: tuple[int, ...]
    batch_size: int
    layers: list[LayerInfo]
    total_params: int
    trainable_params: int
    flops: int  # floating-point operations of one forward pass at (batch_size, *input_size); a multiply-add is 2
    activation_bytes: int  # bytes of every leaf module's outputs in one forward pass (an estimate of activations)
    param_bytes: int
    output_shape: tuple[int, ...] | None = None
    flops_by_operator: dict[str, int] = field(default_factory=dict)

    @property
    def flops_per_image(self) -> float:
        return self.flops / self.batch_size

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_size": list(self.input_size),
            "batch_size": self.batch_size,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "flops": self.flops,
            "activation_bytes": self.activation_bytes,
            "param_bytes": self.param_bytes,
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
            "flops_by_operator": dict(self.flops_by_operator),
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def table(self, style: str = "plain") -> str:
        rows = [
            (
                "  " * (layer.depth - 1) + layer.name.rsplit(".", 1)[-1],
                layer.type,
                "x".join(map(str, layer.output_shape)) if layer.output_shape is not None else "-",
                f"{layer.params:,}" if layer.params else "-",
            )
            for layer in self.layers
        ]
        return render_table(("layer", "type", "output shape", "params"), rows, style=style)

    def totals(self) -> str:
        """The three lines under the table: parameters, FLOPs, activation memory."""
        lines = [
            f"params        {self.total_params:,} total, {self.trainable_params:,} trainable "
            f"({self.param_bytes / 2**20:.2f} MiB)",
            f"FLOPs         {self.flops:,} ({format_number(self.flops)} FLOPs; a multiply-add counts 2)",
            f"activations   {self.activation_bytes / 2**20:.2f} MiB (outputs of every layer in one forward pass)",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        size = "x".join(map(str, self.input_size))
        return "\n".join([f"{self.name} at input {self.batch_size}x{size}", self.table(), self.totals()])

    __repr__ = __str__


def _extra_flop_formulas() -> dict[Any, Any]:
    """Formulas PyTorch's counter lacks: on CPU, SDPA dispatches to a flash kernel it does not count."""
    from torch.utils import flop_counter

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None or op in flop_counter.flop_registry:
        return {}

    def cpu_flash_attention(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query, key, value)

    return {op: cpu_flash_attention}


def count_flops(model: nn.Module, x: torch.Tensor) -> tuple[int, dict[str, int]]:
    """FLOPs of ``model(x)`` (a multiply-add counts 2) and their split by operator, with ``FlopCounterMode``."""
    from torch.utils import flop_counter

    counter = flop_counter.FlopCounterMode(display=False, custom_mapping=_extra_flop_formulas())
    with counter, torch.no_grad():
        model(x)
    counts = counter.get_flop_counts().get("Global", {})
    by_op = {str(op).removeprefix("aten."): int(n) for op, n in counts.items()}
    return int(counter.get_total_flops()), by_op


_DEFAULT_FLOPS: dict[str, int | None] = {}


def default_flops(name: str) -> int | None:
    """FLOPs of one image at the model card's input size, counted once per process on the meta device (no memory,
    no initialisation); ``None`` when the card has no input size or the model cannot run on the meta device."""
    if name not in _DEFAULT_FLOPS:
        from zoo import registry

        size = registry.get_spec(name).input_size
        flops = None
        if size is not None:
            try:
                with torch.device("meta"):
                    flops = count_flops(registry.create(name).eval(), torch.zeros(1, *size))[0]
            except Exception:  # a builder or a layer that cannot run on the meta device
                flops = None
        _DEFAULT_FLOPS[name] = flops
    return _DEFAULT_FLOPS[name]


def _resolve(model_or_name: nn.Module | str, input_size: Sequence[int] | None) -> tuple[nn.Module, str, tuple]:
    from zoo import registry

    if isinstance(model_or_name, str):
        spec = registry.get_spec(model_or_name)
        size = tuple(input_size) if input_size is not None else spec.input_size
        if size is None:
            raise ValueError(f"{model_or_name}: its card declares no input_size; pass input_size=(C, H, W)")
        kwargs = {}
        if input_size is not None:
            kwargs = {"in_chans": size[0], "img_size": size[1] if size[1] == size[2] else tuple(size[1:])}
        try:
            with torch.device("meta"):  # only shapes are needed: no memory, no initialisation cost
                model = registry.create(model_or_name, **kwargs)
        except Exception:
            model = registry.create(model_or_name, **kwargs)
        return model, model_or_name, size
    if not isinstance(model_or_name, nn.Module):
        raise TypeError(f"summary() takes a model name or an nn.Module, got {type(model_or_name).__name__}")
    model = model_or_name
    config = getattr(model, "zoo_config", None)
    name = config["name"] if config else type(model).__name__
    if input_size is None and config:
        spec = registry.get_spec(config["name"])
        if spec.input_size is not None:
            c, h, w = spec.input_size
            kw = config.get("kwargs", {})
            img = kw.get("img_size", h)
            h, w = (img, img) if isinstance(img, int) else tuple(img)
            input_size = (kw.get("in_chans", c), h, w)
    if input_size is None:
        raise ValueError(
            f"summary() needs input_size=(C, H, W) for a {type(model).__name__} not made by zoo.create "
            "(e.g. input_size=(3, 32, 32))"
        )
    return model, name, tuple(input_size)


def summary(
    model_or_name: nn.Module | str,
    input_size: Sequence[int] | None = None,
    *,
    batch_size: int = 1,
    depth: int = 3,
) -> Summary:
    """Parameters, FLOPs, activation memory and a per-layer table of a model at an input size.

    Args:
        model_or_name: a registry name (built on the meta device: instant, even for ViT-B) or an ``nn.Module``.
        input_size: ``(C, H, W)``; defaults to the model card's input (for names and for models made by
            ``zoo.create``); required for other modules.
        batch_size: the batch of the forward pass that is measured; ``flops_per_image`` divides by it.
        depth: nesting depth of the modules listed in the table (1: only the model's children).

    Returns:
        A ``Summary``: ``print()`` it, or read ``total_params``, ``trainable_params``, ``flops`` (a multiply-add
        counts 2, never MACs), ``activation_bytes``, ``layers`` and ``to_dict()``.
    """
    model, name, size = _resolve(model_or_name, input_size)
    if len(size) != 3 or not all(isinstance(v, int) and v > 0 for v in size):
        raise ValueError(f"input_size must be (C, H, W) positive integers, got {tuple(size)}")
    try:
        param = next(iter(model.parameters()))
        device, dtype = param.device, param.dtype if param.is_floating_point() else torch.float32
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32

    rows: dict[str, LayerInfo] = {}
    shapes: dict[str, tuple[int, ...] | None] = {}
    act_bytes = [0]
    handles = []

    def first_tensor(out: Any) -> torch.Tensor | None:
        if isinstance(out, torch.Tensor):
            return out
        if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
            return out[0]
        return None

    def tensor_bytes(out: Any) -> int:
        if isinstance(out, torch.Tensor):
            return out.numel() * out.element_size()
        if isinstance(out, (tuple, list)):
            return sum(tensor_bytes(o) for o in out)
        if isinstance(out, dict):
            return sum(tensor_bytes(o) for o in out.values())
        return 0

    for mod_name, module in model.named_modules():
        if not mod_name:
            continue
        level = mod_name.count(".") + 1
        leaf = next(iter(module.children()), None) is None
        if level <= depth:
            rows[mod_name] = LayerInfo(
                mod_name, type(module).__name__, level, None, sum(p.numel() for p in module.parameters())
            )

        def hook(mod, inp, out, mod_name=mod_name, leaf=leaf, listed=level <= depth):
            if listed:
                t = first_tensor(out)
                shapes[mod_name] = tuple(t.shape) if t is not None else None
            if leaf:
                act_bytes[0] += tensor_bytes(out)

        handles.append(module.register_forward_hook(hook))

    was_training = model.training
    model.eval()
    x = torch.zeros(batch_size, *size, device=device, dtype=dtype)
    try:
        flops, by_op = count_flops(model, x)
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for mod_name, layer in rows.items():
        layer.output_shape = shapes.get(mod_name)
    out_t = first_tensor(out)
    # hooks ran twice (FLOP count + forward): keep one pass
    act = act_bytes[0] // 2
    params = list(model.parameters())
    return Summary(
        name=name,
        input_size=tuple(size),
        batch_size=batch_size,
        layers=[r for r in rows.values() if r.output_shape is not None or r.params],
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        flops=flops,
        activation_bytes=act,
        param_bytes=sum(p.numel() * p.element_size() for p in params),
        output_shape=tuple(out_t.shape) if out_t is not None else None,
        flops_by_operator=by_op,
    )
