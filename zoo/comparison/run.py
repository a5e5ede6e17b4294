"""``zoo.compare``: train and measure several architectures on one dataset, one row each, resumable in a run
directory (owned while written, torn lines dropped)."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from zoo.comparison.results import COLUMNS, Results
from zoo.comparison.summarize import summary
from zoo.comparison.tables import one_line
from zoo.comparison.timing import environment, model_device, time_forward


def _run_one(
    name: str,
    data: Any,
    epochs: int,
    batch_size: int | None,
    throughput_batch: int,
    latency_runs: int,
    seed: int,
    fit_kwargs: dict[str, Any],
) -> dict[str, Any]:
    from zoo import registry
    from zoo.train import evaluate, fit

    row: dict[str, Any] = {"model": name}
    torch.manual_seed(seed)
    model = registry.create(name, num_classes=data.num_classes, in_chans=data.in_chans, img_size=data.img_size)
    s = summary(model, data.input_size)
    row["params"] = s.total_params
    row["flops"] = s.flops
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    if batch_size is not None:
        fit_kwargs["batch_size"] = batch_size
    history = fit(model, data, epochs=epochs, **fit_kwargs)
    epochs_log = list(getattr(history, "epochs", []) or [])
    seconds = [e.get("seconds") for e in epochs_log if e.get("seconds") is not None]
    row["train_s"] = float(sum(seconds)) if seconds else None
    rates = [e.get("images_per_s") for e in epochs_log if e.get("images_per_s")]
    row["train_img_s"] = float(statistics.median(rates)) if rates else None
    device = model_device(model)
    row["device"] = str(getattr(history, "device", device))
    row["precision"] = str(getattr(history, "precision", "fp32"))
    # the test split is scored once, by fit, after training; model selection never saw it
    metrics = history.test if getattr(history, "test", None) else evaluate(model, data)
    row["top1"] = float(metrics["top1"])
    row["top5"] = float(metrics["top5"]) if metrics.get("top5") is not None else None
    row["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    model.eval()
    row["latency_ms"] = row["throughput_img_s"] = None
    if latency_runs > 0:
        try:  # a timing that fails (out of memory at batch 256) must not lose the trained model's row
            x1 = torch.randn(1, *data.input_size, device=device)
            row["latency_ms"] = 1000 * time_forward(model, x1, latency_runs)
            xb = torch.randn(throughput_batch, *data.input_size, device=device)
            row["throughput_img_s"] = throughput_batch / time_forward(model, xb, max(1, latency_runs // 3), warmup=1)
        except Exception as exc:
            row["note"] = f"timing failed: {one_line(exc)}"
    return row


def compare(
    names: Sequence[str] | str,
    dataset: Any = "digits",
    epochs: int = 1,
    *,
    img_size: int | None = None,
    batch_size: int | None = None,
    throughput_batch: int = 256,
    latency_runs: int = 10,
    seed: int = 0,
    run_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
    **fit_kwargs: Any,
) -> Results:
    """Train and measure several architectures on one dataset; one row per model.

    Each model is created to fit the dataset (``num_classes``, ``in_chans``, ``img_size``), trained with
    ``zoo.fit`` and scored with ``zoo.evaluate`` on the test split; then its inference latency (batch 1, median
    of ``latency_runs``) and throughput (batch ``throughput_batch``) are timed. A model that fails (input too
    small, an error, out of memory) gets a row with the reason in ``error``; the others still run.

    Args:
        names: registry names (``["mlp", "lenet5", "alexnet"]``), or one name.
        dataset: a dataset name (``zoo.list_datasets()``), a path to an image folder, or a loaded
            ``zoo.data.Dataset``.
        epochs: training epochs per model.
        img_size: resize the dataset to this size on load (default: the dataset's own size).
        batch_size: training batch size (default: ``zoo.fit``'s).
        throughput_batch: the batch for the inference-throughput column.
        latency_runs: timed forward passes for the latency median; 0 skips the timing columns.
        seed: the seed set before each model is created, so runs are repeatable.
        run_dir: a directory where the settings (``config.json``), the environment (``environment.json``) and
            each finished row (appended to ``results.jsonl``) are saved. Models already there without an error
            are not trained again: their saved rows are reused, so comparisons grow run after run.
            ``Results.load(run_dir)`` reloads the table.
        progress: show progress bars (``None``: zoo's default, ``ZOO_PROGRESS``).
        **fit_kwargs: passed to ``zoo.fit`` (``lr``, ``device``, ``precision``, ``optimizer``, ...).

    Returns:
        ``Results``: ``print()`` it, ``.to_markdown()``, ``.to_csv()``, ``.to_json()``, ``.plot("cmp.png")``.
    """
    if isinstance(names, str):
        names = [names]
    names = list(dict.fromkeys(names))
    if not names:
        raise ValueError("compare() needs at least one model name")
    from zoo import registry

    for n in names:  # fail fast on a typo, before any training
        registry.get_spec(n)
    if isinstance(dataset, str | os.PathLike):
        from zoo.data import load_dataset

        options = {"img_size": img_size} if img_size is not None else {}
        data = load_dataset(str(dataset), **options)
        dataset_name = str(dataset)
    else:
        data = dataset
        dataset_name = getattr(data, "name", type(data).__name__)
    if progress is not None:
        fit_kwargs["progress"] = progress
    config = {
        "dataset": dataset_name,
        "epochs": epochs,
        "img_size": data.img_size,
        "batch_size": batch_size,
        "throughput_batch": throughput_batch,
        "seed": seed,
        "fit_kwargs": {k: v for k, v in fit_kwargs.items() if k != "progress"},
    }
    from zoo.train.rundir import RunDirLock

    # a run directory is owned while rows are added to it: a second compare into it gets a one-line error
    with RunDirLock(run_dir, "zoo.compare") if run_dir is not None else contextlib.nullcontext():
        done: dict[str, dict[str, Any]] = {}
        if run_dir is not None:
            done = _open_run_dir(Path(run_dir), config)
        rows = []
        for name in names:
            if name in done:
                rows.append(done[name])
                continue
            base = {
                "dataset": dataset_name,
                "epochs": epochs,
                "img_size": data.img_size,
                "batch_size": batch_size,
                "throughput_batch": throughput_batch,
            }
            try:
                row = _run_one(name, data, epochs, batch_size, throughput_batch, latency_runs, seed, dict(fit_kwargs))
                row["error"] = None
            except Exception as exc:  # one failing model must not stop the comparison
                row = {"model": name, "error": one_line(exc)}
            finally:
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            row = {k: row.get(k) for k in COLUMNS} | base | {k: v for k, v in row.items() if k not in COLUMNS}
            rows.append(row)
            if run_dir is not None:
                _append_row(Path(run_dir) / "results.jsonl", row)
    return Results(rows, config)


def _append_row(path: Path, row: dict[str, Any]) -> None:
    """Append one row as a line, after cutting a torn last line an interrupted write left; fsync'd."""
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size:
            f.seek(0)
            data = f.read()
            if not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
        f.seek(0, os.SEEK_END)
        f.write((json.dumps(row, default=str) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())


def _open_run_dir(run_dir: Path, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Create or reopen a run directory; return the rows of models already measured there (without errors)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    saved_config = json.loads(json.dumps(config, default=str))
    if config_path.exists():
        old = json.loads(config_path.read_text())
        diff = sorted(k for k in set(old) | set(saved_config) if old.get(k) != saved_config.get(k))
        if diff:
            raise ValueError(
                f"run directory '{run_dir}' holds a comparison with other settings ({', '.join(diff)} differ: "
                f"{', '.join(f'{k}={old.get(k)!r}' for k in diff)}); use another run_dir"
            )
    else:
        config_path.write_text(json.dumps(saved_config, indent=2) + "\n")
    (run_dir / "environment.json").write_text(json.dumps(environment(), indent=2) + "\n")
    if not (run_dir / "results.jsonl").exists():
        return {}
    return {r["model"]: r for r in Results.load(run_dir).rows if not r.get("error")}
