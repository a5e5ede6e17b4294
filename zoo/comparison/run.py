"""``zoo.compare``: train and measure several architectures on one dataset, one row each, resumable in a run
directory (owned while written, torn lines dropped). Names may be wildcards (``"efficientnet_b*"``) or a family."""

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
from zoo.comparison.rowsfile import append_row, read_config
from zoo.comparison.summarize import summary
from zoo.comparison.tables import one_line
from zoo.comparison.timing import environment, model_device, time_forward
from zoo.files import RunDirLock, atomic_write
from zoo.suggest import suggest
from zoo.threads import choose_threads, step_flops, use_threads


def measure_model(
    name: str,
    data: Any,
    epochs: int,
    *,
    batch_size: int | None = None,
    throughput_batch: int = 256,
    latency_runs: int = 10,
    seed: int = 0,
    fit_kwargs: dict[str, Any] | None = None,
    weights: Any = None,
) -> dict[str, Any]:
    """Create ``name`` for ``data`` (from ``weights`` when given, adapted to the data as ``zoo.create`` does), train
    it with ``zoo.fit``, score it on the test split and time it: one row.

    The row holds the ``COLUMNS`` keys (``error`` excepted) and ``curve``, one record per epoch (``epoch``,
    ``seconds`` since the start of training, ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``). Errors
    propagate; a run stopped by SIGINT/SIGTERM raises ``KeyboardInterrupt`` so that no half-trained row is kept.
    """
    from zoo import registry
    from zoo.train.evaluate import evaluate
    from zoo.train.trainer import fit

    fit_kwargs = dict(fit_kwargs or {})
    row: dict[str, Any] = {"model": name, "family": registry.get_spec(name).family}
    torch.manual_seed(seed)
    size = {"num_classes": data.num_classes, "in_chans": data.in_chans, "img_size": data.img_size}
    model = registry.create(name, **size) if weights is None else registry.create(name, weights=weights, **size)
    s = summary(model, data.input_size)
    row["params"] = s.total_params
    row["flops"] = s.flops
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    if batch_size is not None:
        fit_kwargs["batch_size"] = batch_size
    history = fit(model, data, epochs=epochs, **fit_kwargs)
    if getattr(history, "interrupted", False):
        raise KeyboardInterrupt(f"{name}: training was interrupted")
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
    row["curve"] = _curve(epochs_log)
    row["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    model.eval()
    row["latency_ms"] = row["throughput_img_s"] = None
    row["threads"] = history.config.get("threads")  # the CPU threads fit trained with (chosen or given)
    if latency_runs > 0:
        try:  # a timing that fails (out of memory at batch 256) must not lose the trained model's row
            x1 = torch.randn(1, *data.input_size, device=device)
            xb = torch.randn(throughput_batch, *data.input_size, device=device)
            # inference is a third of a training step's work
            flops = step_flops(model, xb, throughput_batch)
            chosen = choose_threads(flops / 3 if flops else None, device=device)
            with use_threads(chosen):
                row["latency_ms"] = 1000 * time_forward(model, x1, latency_runs)
                runs = max(1, latency_runs // 3)
                row["throughput_img_s"] = throughput_batch / time_forward(model, xb, runs, warmup=1)
        except Exception as exc:
            row["note"] = f"timing failed: {one_line(exc)}"
    return row


def _curve(epochs_log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-epoch records a training-curve plot needs, with ``seconds`` made cumulative."""
    curve, elapsed = [], 0.0
    for e in epochs_log:
        elapsed += float(e.get("seconds") or 0.0)
        rec = {k: e.get(k) for k in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")}
        curve.append(rec | {"seconds": round(elapsed, 3)})
    return curve


# ---------------------------------------------------------------------------------------------------------
# Selection: names, wildcards, families
# ---------------------------------------------------------------------------------------------------------


def select_models(names: Sequence[str] | str | None = (), *, family: str | Sequence[str] | None = None) -> list[str]:
    """Registry names from exact names, shell wildcards (``"efficientnet_b*"``, ``"vit_*_patch16"``) and families.

    The order is the order asked for: each pattern expands to its sorted matches; duplicates are dropped. A name
    that is not registered and a pattern or family that matches nothing are one-line errors, raised before
    anything trains. ``family`` may be one family or several (``["mobilenet", "efficientnet"]``).
    """
    from zoo import registry

    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for n in names or ():
        if isinstance(n, str) and any(ch in n for ch in "*?["):
            matches = registry.list_models(n)
            if not matches:
                raise ValueError(f"no model matches '{n}'; see zoo.list_models() or `zoo list`")
            out.extend(matches)
        else:
            registry.get_spec(n)  # a typo fails here, with suggestions
            out.append(n)
    families = [family] if isinstance(family, str) else list(family or ())
    for fam in families:
        matches = registry.list_models(family=fam)
        if not matches:
            known = sorted({(registry.get_spec(m).family or "") for m in registry.list_models()} - {""})
            raise ValueError(f"no model of family '{fam}'{suggest(fam, known)} families: {', '.join(known)}")
        out.extend(matches)
    return list(dict.fromkeys(out))


def compare(
    names: Sequence[str] | str | None = None,
    dataset: Any = "digits",
    epochs: int = 1,
    *,
    family: str | Sequence[str] | None = None,
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
        names: registry names (``["mlp", "lenet5", "alexnet"]``), one name, or shell wildcards
            (``"efficientnet_b*"``): each pattern expands to the matching names, sorted.
        dataset: a dataset name (``zoo.list_datasets()``), a path to an image folder, or a loaded
            ``zoo.data.Dataset``.
        epochs: training epochs per model.
        family: add every model of this family (``"efficientnet"``), or of each family in a list.
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
    names = select_models(names, family=family)  # fails fast on a typo, before any training
    if not names:
        raise ValueError("compare() needs at least one model name, pattern or family")
    from zoo.train.config import check_config, config_from_options

    # a misspelt or bad fit option is one error before the first model, not the same error in every row
    check_config(config_from_options({**fit_kwargs, "epochs": epochs, "batch_size": batch_size}, "compare"))
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
                row = measure_model(
                    name,
                    data,
                    epochs,
                    batch_size=batch_size,
                    throughput_batch=throughput_batch,
                    latency_runs=latency_runs,
                    seed=seed,
                    fit_kwargs=fit_kwargs,
                )
                row["error"] = None
            except Exception as exc:  # one failing model must not stop the comparison
                row = {"model": name, "error": one_line(exc)}
            finally:
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            row = {k: row.get(k) for k in COLUMNS} | base | {k: v for k, v in row.items() if k not in COLUMNS}
            rows.append(row)
            if run_dir is not None:
                append_row(Path(run_dir) / "results.jsonl", row)
    return Results(rows, config)


def prepare_run_dir(run_dir: str | os.PathLike, config: dict[str, Any], what: str = "comparison") -> Path:
    """Create or reopen a run directory for ``config``: saved as ``config.json`` the first time, compared with it
    later (other settings are a one-line ``ValueError``); ``environment.json`` records this run's machine."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    saved_config = json.loads(json.dumps(config, default=str))
    if config_path.exists():
        old = read_config(config_path, f"{what}'s settings")
        diff = sorted(k for k in set(old) | set(saved_config) if old.get(k) != saved_config.get(k))
        if diff:
            raise ValueError(
                f"run directory '{run_dir}' holds a {what} with other settings ({', '.join(diff)} differ: "
                f"{', '.join(f'{k}={old.get(k)!r}' for k in diff)}); use another run_dir"
            )
    else:
        atomic_write(config_path, json.dumps(saved_config, indent=2) + "\n")
    atomic_write(run_dir / "environment.json", json.dumps(environment(), indent=2) + "\n")
    return run_dir


def _open_run_dir(run_dir: Path, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Create or reopen a run directory; return the rows of models already measured there (without errors)."""
    prepare_run_dir(run_dir, config)
    if not (run_dir / "results.jsonl").exists():
        return {}
    return {r["model"]: r for r in Results.load(run_dir).rows if not r.get("error")}
