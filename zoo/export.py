"""Exporting a model to ONNX, ``torch.export``'s ``.pt2`` or TorchScript, and checking the exported file.

``export(model, path, format)`` writes the file atomically; ``check_export(model, path, format)`` runs it (ONNX
through onnxruntime, an optional extra; ``.pt2`` through ``torch.export.load``; TorchScript through
``torch.jit.load``) on the same input as the model and returns the largest difference of the outputs. The input is
the model's recorded one (``pretrained_cfg["input_size"]``: what ``zoo.create`` or the weights set), a seeded
random batch. ``zoo export`` is the command over both.

onnx and onnxruntime are imported only here and only when asked for; nothing pickled is written or read
(TorchScript and ``.pt2`` archives hold code as TorchScript / exported graphs, which ``torch.jit.load`` and
``torch.export.load`` read without unpickling Python objects).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from zoo.files import atomic_write

__all__ = ["FORMATS", "SUFFIXES", "ExportCheck", "ExportError", "example_input", "export", "check_export"]

FORMATS = ("onnx", "pt2", "torchscript")
SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".ts.pt"}
CHECK_BATCH = 2  # the batch the file is exported with; --dynamic-batch is checked at CHECK_BATCH + 1 too


class ExportError(RuntimeError):
    """A model cannot be exported to a format, or its exported file cannot be run."""


@dataclass(frozen=True)
class ExportCheck:
    """How an exported file's outputs compare with the model's on the same inputs.

    Attributes:
        max_diff: the largest absolute difference over every batch size checked.
        scale: the largest absolute output of the model (the difference is judged relative to it).
        batches: the batch sizes run.
        runtime: what ran the file (``"onnxruntime 1.20.1"``, ``"torch.export.load"``, ``"torch.jit.load"``).
    """

    max_diff: float
    scale: float
    batches: tuple[int, ...]
    runtime: str

    def within(self, tolerance: float) -> bool:
        """``max_diff <= tolerance * max(1, scale)``: absolute for small outputs, relative for large ones."""
        return self.max_diff <= tolerance * max(1.0, self.scale)


def input_size(model: nn.Module) -> tuple[int, int, int]:
    """The model's recorded input ``(C, H, W)``: its ``pretrained_cfg``, else its ``zoo_config["inputs"]``."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = cfg.get("input_size")
    if not size:
        inputs = (getattr(model, "zoo_config", None) or {}).get("inputs") or {}
        size = inputs.get("input_size")
    if not size or len(size) != 3:
        raise ExportError(
            f"{type(model).__name__} records no input size (pretrained_cfg['input_size']); pass one, e.g. "
            "--img-size 224 with --in-chans 3"
        )
    return int(size[0]), int(size[1]), int(size[2])


def example_input(model: nn.Module, batch: int = CHECK_BATCH, size: Sequence[int] | None = None) -> torch.Tensor:
    """A seeded random float batch of the model's recorded input size (or ``size``, ``(C, H, W)``)."""
    c, h, w = tuple(size) if size is not None else input_size(model)
    return torch.randn(batch, c, h, w, generator=torch.Generator().manual_seed(batch))


def _dynamic_shapes(dynamic_batch: bool) -> Any:
    return ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic_batch else None


def _export_onnx(model: nn.Module, x: torch.Tensor, path: Path, dynamic_batch: bool) -> None:
    try:
        import onnx  # noqa: F401  (torch.onnx's dynamo exporter needs it; say so in one line)
    except ImportError:
        raise ExportError("--format onnx needs the onnx package: pip install onnx onnxscript") from None

    with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress
        program = torch.onnx.export(
            model, (x,), dynamo=True, dynamic_shapes=_dynamic_shapes(dynamic_batch), verbose=False
        )
    # ONNXProgram.save writes to a path: a hidden file next to the target, renamed into place (atomic)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        program.save(str(tmp), external_data=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _export_pt2(model: nn.Module, x: torch.Tensor, path: Path, dynamic_batch: bool) -> None:
    program = torch.export.export(model, (x,), dynamic_shapes=_dynamic_shapes(dynamic_batch))
    atomic_write(path, lambda f: torch.export.save(program, f))


def _export_torchscript(model: nn.Module, x: torch.Tensor, path: Path, dynamic_batch: bool) -> None:
    # Scripted, not traced: a scripted model keeps its input checks and takes any batch size.
    with warnings.catch_warnings():
        # torch 2.10+ calls torch.jit deprecated (FutureWarning); annotations it skips are UserWarnings
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        scripted = torch.jit.script(model)
        atomic_write(path, lambda f: torch.jit.save(scripted, f))


_EXPORTERS = {"onnx": _export_onnx, "pt2": _export_pt2, "torchscript": _export_torchscript}


def check_format(format: str) -> str:
    if format not in FORMATS:
        from zoo.suggest import suggest

        raise ValueError(f"unknown export format {format!r}; accepted: {', '.join(FORMATS)}{suggest(format, FORMATS)}")
    return format


def export(
    model: nn.Module,
    path: str | os.PathLike,
    format: str = "onnx",
    *,
    dynamic_batch: bool = False,
    size: Sequence[int] | None = None,
) -> Path:
    """Export ``model`` (in eval mode) to ``path``, written atomically.

    Args:
        format: ``"onnx"`` (torch.onnx's dynamo exporter), ``"pt2"`` (``torch.export``) or ``"torchscript"``
            (``torch.jit.script``).
        dynamic_batch: leave the batch dimension free (ONNX and ``.pt2``; a scripted model always is).
        size: the input ``(C, H, W)``; default the model's recorded input.

    Returns:
        The path written. ``ExportError`` in one line when the model does not export.
    """
    check_format(format)
    path = Path(path)
    model = model.eval()
    x = example_input(model, CHECK_BATCH, size)
    try:
        with torch.no_grad():
            _EXPORTERS[format](model, x, path, dynamic_batch)
    except ExportError:
        raise
    except Exception as exc:
        from zoo.messages import first_line

        raise ExportError(f"{type(model).__name__} does not export to {format}: {first_line(str(exc))}") from None
    return path


def _runner(path: Path, format: str) -> tuple[Any, str]:
    """A function running the exported file on a tensor, and what runs it."""
    if format == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise ExportError("checking an ONNX file needs onnxruntime: pip install onnxruntime") from None
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return (lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])), f"onnxruntime {ort.__version__}"
    if format == "pt2":
        module = torch.export.load(str(path)).module()
        return module, "torch.export.load"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    return module, "torch.jit.load"


def check_export(
    model: nn.Module,
    path: str | os.PathLike,
    format: str,
    *,
    dynamic_batch: bool = False,
    size: Sequence[int] | None = None,
) -> ExportCheck:
    """Run the exported file and ``model`` on the same seeded inputs (the export batch, and one more batch size
    with ``dynamic_batch``); returns the largest difference of their outputs."""
    check_format(format)
    run, runtime = _runner(Path(path), format)
    batches = (CHECK_BATCH, CHECK_BATCH + 1) if dynamic_batch else (CHECK_BATCH,)
    diff = scale = 0.0
    model = model.eval()
    for batch in batches:
        x = example_input(model, batch, size)
        with torch.no_grad():
            expected, got = model(x), run(x)
        if tuple(got.shape) != tuple(expected.shape):
            raise ExportError(f"the exported file gives shape {tuple(got.shape)}, the model {tuple(expected.shape)}")
        diff = max(diff, (got.float() - expected.float()).abs().max().item())
        scale = max(scale, expected.abs().max().item())
    return ExportCheck(max_diff=diff, scale=scale, batches=batches, runtime=runtime)
