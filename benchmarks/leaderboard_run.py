"""The leaderboard: every model of zoo's catalogue trained under one stated budget, resumable, rendered to a page.
A benchmark that writes a docs page, so it lives in ``benchmarks/`` (not in the package); users compare their own
models and data with ``zoo.compare`` (``limit=``, ``epochs=``).

    budget = Budget(dataset="fashion-mnist", limit=6000, epochs=3, max_model_s=90)
    run_leaderboard(zoo.list_models(), budget, "runs/leaderboard/fashion-mnist-28")   # kill and rerun: resumes
    table = leaderboard_results("runs/leaderboard/fashion-mnist-28")                  # one row per model

Each model is probed first (a few timed training and inference steps), and the probe's speeds size its run: a model
that fits the budget's time cap trains the whole budget; a slower one trains the same epochs on a smaller
stratified subset sized to fit the cap ("capped"); one that cannot fit even ``min_images`` is recorded as "too slow"
with its measured speeds and the time the whole budget would take. A model that fails gets its error in its row.
Each (model, seed) row is appended to ``rows.jsonl`` in the run directory as it finishes, and skipped when the run is
started again. ``benchmarks/leaderboard.py`` is the command line; ``leaderboard_page`` renders ``docs/leaderboard.md``.
With ``finetune=FineTune(...)`` (``leaderboard_transfer``) it is the pretrained board: each model starts from
weights adapted to the data, in a run directory of its own kind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import math
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from leaderboard_transfer import FineTune, NoWeights, choose_weights, create_pretrained

from zoo.comparison.results import ROW_FIELDS as RESULT_FIELDS, Results
from zoo.comparison.rowsfile import append_row, read_config, read_row_lines
from zoo.comparison.run import measure_model, prepare_run_dir
from zoo.comparison.tables import one_line
from zoo.comparison.timing import median_time, train_step_fn
from zoo.files import RunDirLock, atomic_write
from zoo.threads import choose_threads, step_flops, use_threads
from zoo.train.callbacks import Callback
from zoo.transfer import TransferWarning

ROWS_FILE = "rows.jsonl"


def _transfer_problem(value: Any) -> str | None:
    """A row's ``transfer`` record (``zoo.transfer.TransferReport.to_dict``): the page shows its stem's channels."""
    stem = value.get("stem") if isinstance(value, dict) else ()
    if stem is not None and not (isinstance(stem, list) and len(stem) == 3 and all(type(c) is int for c in stem[1:])):
        return "a transfer record (stem: [key, channels, channels])"
    return None


STATUSES = ("full", "capped", "stopped", "too slow", "error", "no weights")
# What each field of a saved row may hold (zoo.comparison.rowsfile): a forged or damaged row is skipped, not shown.
ROW_FIELDS = RESULT_FIELDS | {
    "seed": "count", "status": STATUSES, "images": "count", "estimate_s": "amount", "wall_s": "amount",
    "probe_train_img_s": "amount", "probe_infer_img_s": "amount", "slowdown": "amount", "epochs_done": "count",
    "year": "count", "plugin": "text", "weights": "text", "weights_dataset": "text", "weights_sha256": "hex",
    "transfer": _transfer_problem,
}  # fmt: skip


@dataclasses.dataclass
class Budget:
    """What every model gets; saved as the run directory's ``config.json`` and printed with the results."""

    dataset: str = "fashion-mnist"  # a registered dataset name (or an image folder)
    img_size: int | None = None  # resize on load; None -> the dataset's own size
    root: str | None = None  # where to look for the dataset's files first
    limit: int = 6000  # training images (stratified subset), before fit holds out 10% of them to validate on
    test_limit: int = 1000  # test images (stratified subset), the same for every model
    epochs: int = 3  # passes over the training subset
    max_model_s: float = 80.0  # cap on a model's estimated wall seconds per seed: training, validation and test
    min_images: int = 500  # the smallest training subset a capped model gets; below it the model is "too slow"
    seeds: int = 2  # seeds 0..seeds-1 for models that ran the whole budget in under half the cap; others: seed 0
    device: str = "auto"  # passed to zoo.fit: 'auto', 'cpu', 'cuda', ...

    def describe(self, img_size: int | None = None) -> str:
        """The budget in one sentence, for the log and the page (``img_size``: the size the data loaded at)."""
        size = f"{self.img_size or img_size} px" if self.img_size or img_size else "native size"
        return (
            f"{self.dataset} at {size}: {self.epochs} epochs over a stratified {self.limit:,} training images "
            f"(10% held out for validation), test on a stratified {self.test_limit:,}; at most "
            f"{self.max_model_s:g} s per model and seed (a slower model trains on a smaller subset, at least "
            f"{self.min_images:,} images, or is recorded as too slow); {self.seeds} seed"
            f"{'s' if self.seeds != 1 else ''} for the models that take under {self.max_model_s / 2:g} s; "
            f"device {self.device}; everything else zoo.fit's defaults"
        )


# ---------------------------------------------------------------------------------------------------------
# Probing and planning
# ---------------------------------------------------------------------------------------------------------


def probe_speed(
    model: torch.nn.Module, input_size: Sequence[int], device: torch.device, *, batch: int = 4, big_batch: int = 64
) -> tuple[float, float]:
    """Training (forward + backward) and inference images/s of ``model`` on random inputs, after warm-up.

    A first probe at ``batch`` keeps slow models cheap to measure; a model whose step takes under half a second is
    measured again at ``big_batch``, closer to the batch fit trains with (small batches understate speed). Each
    figure comes from the fastest of at least two timed steps after two untimed ones (the first calls of a new
    shape are slow on CPUs; other work on the machine only slows a step down), more while they take under 1 s.
    The probe runs on the CPU threads fit would choose (``zoo.threads``: by the step's size at fit's batch of 256
    and the cores other work leaves free): all of them on a busy machine can be many times slower than fit.
    """

    def rate(fn: Callable[[], None], b: int) -> float:
        for _ in range(2):
            fn()
        times: list[float] = []
        while len(times) < 2 or (sum(times) < 1.0 and len(times) < 7):
            times.append(median_time(fn, 1, 0, device))
        return b / min(times)  # contention only slows a step down: the fastest is the best estimate

    def measure(b: int) -> tuple[float, float]:
        x = torch.randn(b, *input_size, device=device)
        train_step = train_step_fn(model, x)

        def forward() -> None:
            with torch.inference_mode():
                model(x)

        model.train()
        train_img_s = rate(train_step, b)
        model.eval()
        infer_img_s = rate(forward, b)
        model.train()
        return train_img_s, infer_img_s

    sample = torch.randn(2, *input_size, device=device)
    with use_threads(choose_threads(step_flops(model, sample, 256), device=device)):
        train_img_s, infer_img_s = measure(batch)
        if batch / train_img_s < 0.5 and big_batch > batch:
            train_img_s, infer_img_s = measure(big_batch)
    return train_img_s, infer_img_s


def estimate_s(n: int, budget: Budget, n_test: int, train_img_s: float, infer_img_s: float) -> float:
    """Wall seconds fit should take on ``n`` training images: the epochs over 90%, validating on 10% after each,
    then the test split once (plus 2 s of setup)."""
    per_epoch = 0.9 * n / train_img_s + 0.1 * n / infer_img_s
    return 2.0 + budget.epochs * per_epoch + n_test / infer_img_s


def plan_images(
    n_full: int, budget: Budget, n_test: int, train_img_s: float, infer_img_s: float
) -> tuple[str, int, float]:
    """``(status, images, estimated seconds)``: ``"full"`` with every image when that fits the cap; ``"capped"``
    with the largest multiple of 10 that fits (not below ``min_images``); else ``"too slow"`` with the estimate of
    the whole budget."""
    full = estimate_s(n_full, budget, n_test, train_img_s, infer_img_s)
    if full <= budget.max_model_s:
        return "full", n_full, full
    fixed = 2.0 + n_test / infer_img_s
    per_image = budget.epochs * (0.9 / train_img_s + 0.1 / infer_img_s)
    n = int(max(0.0, budget.max_model_s - fixed) / per_image) // 10 * 10
    if n < min(budget.min_images, n_full):
        return "too slow", n_full, full
    return "capped", n, estimate_s(n, budget, n_test, train_img_s, infer_img_s)


# ---------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------


def load_budget_data(budget: Budget) -> Any:
    """The dataset with its training split cut to ``limit`` and its test split to ``test_limit`` (stratified)."""
    from zoo.data import load_dataset, subset

    options: dict[str, Any] = {"img_size": budget.img_size} if budget.img_size else {}
    data = load_dataset(budget.dataset, budget.root, **options)
    return dataclasses.replace(data, train=subset(data.train, budget.limit), test=subset(data.test, budget.test_limit))


def read_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """The (model, seed) rows saved in ``run_dir``; a torn last line (an interrupted append) is left out."""
    path = Path(run_dir) / ROWS_FILE
    if not path.exists():
        return []
    return read_row_lines(path, lambda r: (r["model"], int(r.get("seed", 0))), "leaderboard", fields=ROW_FIELDS)


def _card_fields(name: str) -> dict[str, Any]:
    from zoo import registry

    card = registry.info(name)
    return {"family": card.family, "year": card.year, "plugin": card.plugin}


def run_model(
    name: str,
    data: Any,
    budget: Budget,
    seed: int,
    *,
    n_full: int | None = None,
    slowdown: float = 1.0,
    finetune: FineTune | None = None,
) -> dict[str, Any]:
    """One (model, seed) row: probe, plan, train and score ``name`` under ``budget``; never raises for the model's
    own failures (the reason goes in ``error``), only for an interrupt. With ``finetune`` the model starts from
    weights (``leaderboard_transfer``): the row names them, or is a "no weights" row saying why."""
    from zoo import registry
    from zoo.comparison.summarize import summary
    from zoo.train.devices import resolve_device

    start = time.perf_counter()
    row: dict[str, Any] = {"model": name, "seed": seed, "status": "error", "error": None}
    row |= {"dataset": budget.dataset, "img_size": data.img_size, "epochs": budget.epochs}
    try:
        row |= _card_fields(name)
        device = resolve_device(budget.device)
        torch.manual_seed(seed)
        weights = None
        if finetune is None:
            model = registry.create(name, num_classes=data.num_classes, in_chans=data.in_chans, img_size=data.img_size)
        else:
            weights, fields = choose_weights(name, budget.dataset, finetune)
            row |= fields  # a model whose weights then fail to load still says which they were
            model, row["transfer"] = create_pretrained(name, data, weights, fields)
        s = summary(model, data.input_size)
        row["params"], row["flops"] = s.total_params, s.flops
        model = model.to(device)
        train_img_s, infer_img_s = probe_speed(model, data.input_size, device)
        row["probe_train_img_s"], row["probe_infer_img_s"] = train_img_s, infer_img_s
        del model
        gc.collect()
        n_full = len(data.train) if n_full is None else n_full
        # the probe runs no optimizer and no data pipeline: fit is slower, by the ratio measured on this run so far
        row["slowdown"] = round(slowdown, 3)
        status, n, est = plan_images(n_full, budget, len(data.test), train_img_s / slowdown, infer_img_s / slowdown)
        row["images"], row["estimate_s"] = n, round(est, 1)
        if status == "too slow":
            row["status"] = "too slow"
            row["error"] = f"too slow: the budget would take ~{est:,.0f} s (cap {budget.max_model_s:g} s)"
        else:
            sub = data if n >= len(data.train) else dataclasses.replace(data, train=_subset(data.train, n))
            # a plan that was too hopeful stops at an epoch's end once twice the cap has passed
            deadline = Deadline(start + 2 * budget.max_model_s)
            fit_kwargs = {"device": budget.device, "seed": seed, "progress": False, "callbacks": [deadline]}
            fit_kwargs |= finetune.fit_options() if finetune else {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TransferWarning)  # the row holds the transfer report
                measured = measure_model(
                    name, sub, budget.epochs, latency_runs=0, seed=seed, fit_kwargs=fit_kwargs, weights=weights
                )
            row |= {k: v for k, v in measured.items() if k not in ("latency_ms", "throughput_img_s", "peak_mem_mb")}
            row["status"] = status
            if deadline.stopped_after is not None and deadline.stopped_after < budget.epochs:
                row["status"] = "stopped"
                row["epochs_done"] = deadline.stopped_after
    except KeyboardInterrupt:
        raise
    except NoWeights as exc:
        row["status"], row["error"] = "no weights", str(exc)
    except Exception as exc:  # one failing model must not stop the leaderboard
        row["error"] = one_line(exc)
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    row["wall_s"] = round(time.perf_counter() - start, 2)
    return row


class Deadline(Callback):
    """A ``zoo.fit`` callback: asks fit to stop after the epoch that ends past ``until`` (a ``perf_counter`` time)."""

    def __init__(self, until: float) -> None:
        self.until = until
        self.stopped_after: int | None = None

    def on_epoch_end(self, history: Any, record: dict[str, Any]) -> None:
        if time.perf_counter() > self.until and self.stopped_after is None:
            self.stopped_after = int(record["epoch"])
            history.request_stop("past twice the leaderboard's time cap")


def _subset(split: Any, n: int) -> Any:
    from zoo.data import subset

    return subset(split, n)


def run_leaderboard(
    names: Sequence[str],
    budget: Budget,
    run_dir: str | Path,
    *,
    retry_failed: bool = False,
    log: Callable[[str], None] = print,
    command: str | None = None,
    code_version: str | None = None,
    finetune: FineTune | None = None,
) -> list[dict[str, Any]]:
    """Train every model of ``names`` under ``budget``, saving each (model, seed) row in ``run_dir`` as it finishes.

    Rows already in ``run_dir`` are kept and skipped, failed and too-slow ones too unless ``retry_failed``; a run
    directory made with another budget is refused. ``command`` and ``code_version`` (a commit) are saved in
    ``command.json`` for the page. ``finetune`` makes it the pretrained board: its settings are saved with the budget
    (``config.json``'s ``"pretrained"``), so a from-scratch run is refused in its run directory and the reverse.
    Returns every row of the run directory.
    """

    data = load_budget_data(budget)  # a dataset that is not there fails here, before the run directory is made
    with RunDirLock(run_dir, "leaderboard"):
        check_run_kind(run_dir, finetune)
        config = dataclasses.asdict(budget) | ({"pretrained": dataclasses.asdict(finetune)} if finetune else {})
        what = "pretrained leaderboard" if finetune else "leaderboard"
        path = prepare_run_dir(run_dir, config, what=what) / ROWS_FILE
        if command:
            record = {"command": command.strip(), "code": code_version}
            atomic_write(Path(run_dir) / "command.json", json.dumps(record, indent=2) + "\n")
            log(f"command: {command.strip()} ({len(names)} models, code {code_version or 'unknown'})")
        done = {(r["model"], int(r.get("seed", 0))): r for r in read_rows(run_dir)}
        if retry_failed:
            done = {k: r for k, r in done.items() if r.get("status") in ("full", "capped", "stopped")}
        log(f"budget: {budget.describe(data.img_size)}")
        if finetune:
            log(f"fine-tuning: {finetune.describe()}")
        log(f"data: {len(data.train):,} training / {len(data.test):,} test images, input {tuple(data.input_size)}")
        for i, name in enumerate(names, 1):
            for seed in range(budget.seeds):
                if (name, seed) in done:
                    continue
                first = done.get((name, 0))
                if seed > 0 and not _wants_more_seeds(first, budget):
                    break
                slowdown = measured_slowdown(done.values(), budget)
                row = run_model(name, data, budget, seed, slowdown=slowdown, finetune=finetune)
                append_row(path, row)
                done[(name, seed)] = row
                log(_log_line(i, len(names), row))
    return read_rows(run_dir)


def check_run_kind(run_dir: str | Path, finetune: FineTune | None) -> None:
    """Refuse, in one line, a pretrained run in a from-scratch run directory and the reverse."""
    config_path = Path(run_dir) / "config.json"
    if not config_path.exists():
        return
    pretrained = "pretrained" in read_config(config_path, "leaderboard's budget")
    if pretrained != (finetune is not None):
        held, wanted = ("pretrained", "a from-scratch run") if pretrained else ("from-scratch", "a --pretrained run")
        raise ValueError(f"run directory '{run_dir}' holds a {held} leaderboard; {wanted} needs another --run-dir")


def measured_slowdown(rows: Any, budget: Budget) -> float:
    """How much slower fit trained than the probes predicted, on the rows trained so far (median, within 1-4);
    1 before any. Later models are planned with it, so that the cap holds on a machine shared with other work."""
    ratios = []
    for r in rows:
        if r.get("train_s") and r.get("images") and r.get("probe_train_img_s") and r.get("probe_infer_img_s"):
            predicted = budget.epochs * r["images"] * (0.9 / r["probe_train_img_s"] + 0.1 / r["probe_infer_img_s"])
            ratios.append(r["train_s"] / predicted)
    return min(4.0, max(1.0, statistics.median(ratios))) if ratios else 1.0


def _wants_more_seeds(first: dict[str, Any] | None, budget: Budget) -> bool:
    return bool(first) and first.get("status") == "full" and (first.get("wall_s") or math.inf) <= budget.max_model_s / 2


def _log_line(i: int, n: int, row: dict[str, Any]) -> str:
    head = f"[{i}/{n}] {row['model']} seed {row['seed']}: {row['status']}"
    if row.get("weights"):
        head += f" from {row['weights']}"
    if row.get("top1") is not None:
        head += f", top-1 {100 * row['top1']:.1f}% on {row.get('images', 0):,} images"
        head += f", train {row.get('train_s') or 0:.1f} s"
    if row.get("error"):
        head += f" ({row['error']})"
    return head + f"; {row['wall_s']:.1f} s in all"


# ---------------------------------------------------------------------------------------------------------
# One row per model
# ---------------------------------------------------------------------------------------------------------


def reference_top1(card: Any) -> str | None:
    """The first reported top-1 (ImageNet-1k first) of a model card's optional ``reported`` entries, as text:
    ``"77.7 (ImageNet-1k)"``; an error metric is shown as written (``"0.95% error (MNIST)"``); None if absent."""
    entries = list(getattr(card, "reported", None) or ())

    def field(e: Any, key: str) -> Any:
        return e.get(key) if isinstance(e, dict) else getattr(e, key, None)

    def text(e: Any) -> str | None:
        value, metric, ds = field(e, "value"), str(field(e, "metric") or ""), field(e, "dataset") or "?"
        if value is None:
            return None
        if isinstance(value, int | float):
            shown = f"{100 * value:.1f}" if 0 < value <= 1 and "error" not in metric.lower() else f"{value:.3g}"
        else:
            shown = str(value)
        if "error" in metric.lower():
            return f"{shown} {metric} ({ds})"  # as written: '4.51 test error % (CIFAR-10)'
        return f"{shown} ({ds})"

    def is_top1(e: Any) -> bool:
        m = str(field(e, "metric") or "").lower().replace("-", "").replace(" ", "")
        return "top1" in m or "acc@1" in m or m in ("accuracy", "acc")

    def imagenet(e: Any) -> bool:
        return "imagenet" in str(field(e, "dataset") or "").lower()

    for pick in (lambda e: imagenet(e) and is_top1(e), is_top1, lambda e: True):
        for e in entries:
            if pick(e) and (shown := text(e)):
                return shown
    return None


def aggregate(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per model from its seed rows: ``top1`` the mean over measured seeds, ``top1_spread`` half their range,
    ``top1_seeds`` how many; costs (``train_s``, ``wall_s``) from seed 0; ``ref_top1`` from the model card."""
    from zoo import registry

    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    out = []
    for name, seed_rows in by_model.items():
        seed_rows = sorted(seed_rows, key=lambda r: int(r.get("seed", 0)))
        first = dict(seed_rows[0])
        accs = [r["top1"] for r in seed_rows if r.get("top1") is not None and not r.get("error")]
        first.pop("curve", None)
        row = first | {"curve": seed_rows[0].get("curve")}
        row["top1"] = statistics.fmean(accs) if accs else None
        row["top1_spread"] = (max(accs) - min(accs)) / 2 if len(accs) > 1 else None
        row["top1_seeds"] = len(accs)
        row["ref_top1"] = None
        with contextlib.suppress(Exception):  # a model no longer registered keeps its row, without a reference
            row["ref_top1"] = reference_top1(registry.info(name))
        out.append(row)
    out.sort(key=lambda r: (r["top1"] is None, -(r["top1"] or 0.0), r.get("params") or 0))
    return out


def leaderboard_results(run_dir: str | Path) -> Results:
    """The run directory's rows, one per model (``aggregate``), as ``Results``: tables, exports and plots."""
    config_path = Path(run_dir) / "config.json"
    meta = read_config(config_path, "leaderboard's budget") if config_path.exists() else {}
    rows = read_rows(run_dir)
    if not rows:
        raise FileNotFoundError(f"no leaderboard rows in '{run_dir}': {ROWS_FILE} not found or empty")
    return Results(aggregate(rows), meta)
