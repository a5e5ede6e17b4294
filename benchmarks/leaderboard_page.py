"""The leaderboard's page: each run directory's section of ``docs/leaderboard.md`` (heading, command, machine,
budget, cost, table) and its plots, drawn from the saved rows alone: rendering never trains."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from leaderboard_run import Budget, leaderboard_results, read_rows
from leaderboard_transfer import NOT_CACHED, FineTune

from zoo.comparison.markdown import markdown_code, markdown_text
from zoo.comparison.results import Results
from zoo.comparison.tables import format_number, render_table
from zoo.files import atomic_write


def _md(text: Any) -> str:
    return markdown_text(text)  # rows are read from a file: a name may hold markdown or HTML


def _code(name: Any) -> str:
    """A model or weights name as inline code (a cell the browser does not break mid-name: docs/css/extra.css)."""
    return markdown_code(name)


NOTE_WIDTH = 30  # the note column's widest cell; longer reasons go in the list under the tables


def _note(row: dict[str, Any]) -> tuple[str, str | None]:
    """``(cell, detail)``: a short note for the table and, when the reason does not fit, its full text for the
    list under the tables (None when the cell says it all)."""
    status, error = row.get("status"), str(row.get("error") or "")
    if status == "capped":
        return "capped", None
    if status == "too slow":
        return f"too slow: ~{row.get('estimate_s') or 0:,.0f} s", None
    if status == "stopped":
        return f"stopped: {row.get('epochs_done')} of {row.get('epochs')} epochs", None
    if status == "no weights" and error.startswith(NOT_CACHED):
        return "weights not cached", None  # one line under the tables names them all
    if not error:
        return _md(status if status not in (None, "full") else ""), None
    short = _md(error)
    if len(short) <= NOTE_WIDTH:
        return short, None
    return ("failed" if status == "error" else _md(status or "see below")) + " (below)", error


def _source(row: dict[str, Any]) -> str:
    """The "fine-tuned from" cell: the weights' name and the data they were trained on (what was adapted is in
    the notes under the tables)."""
    if not row.get("weights"):
        return "—"
    shown = _code(row["weights"])
    if row.get("weights_dataset"):
        shown += f" ({_md(row['weights_dataset'])})"
    elif row.get("weights_sha256"):
        shown += f" (sha256 {row['weights_sha256'][:8]})"
    return shown


def _adapted(row: dict[str, Any]) -> str:
    """What the transfer changed in the weights: ``"new head, stem 3→1 channels"``; empty when nothing."""
    transfer = row.get("transfer") or {}
    adapted = ["new head"] if transfer.get("fresh") else []
    if transfer.get("stem"):
        adapted.append(f"stem {transfer['stem'][1]}→{transfer['stem'][2]} channels")
    if transfer.get("pos_embed"):
        adapted.append("position embeddings resampled")
    return ", ".join(adapted)


def _top1(r: dict[str, Any]) -> str:
    if r.get("top1") is None:
        return "—"
    top1 = f"{100 * r['top1']:.1f}"
    return top1 + (f" ± {100 * r['top1_spread']:.1f}" if r.get("top1_spread") is not None else "")


def _speed(r: dict[str, Any]) -> str:
    if r.get("train_img_s"):
        return f"{r['train_img_s']:,.0f}"
    probe = r.get("probe_train_img_s")
    if probe:
        return f"~{probe:,.1f} (probe)" if probe < 10 else f"~{probe:,.0f} (probe)"
    return "—"


def markdown_table(results: Results, pretrained: bool = False) -> str:
    """The leaderboard as two GitHub tables that each fit a 1280-px page: the results (rank, model, top-1, the
    images it trained on, note) best top-1 first, then each model's size, cost and the paper's own figure; a
    pretrained run's first table has a "fine-tuned from" column. Reasons too long for a cell follow as a list."""
    rows = list(results.rows)
    headers = ["#", "model", "top-1 %", "images", "train s", "note"]
    if pretrained:
        headers.insert(2, "fine-tuned from")
    first, details = [], []
    for i, r in enumerate(rows, 1):
        trained = r.get("train_s") is not None
        note, detail = _note(r)
        first.append([
            str(i) if r.get("top1") is not None else "", _code(r["model"]), _top1(r),
            f"{r['images']:,}" if trained and r.get("images") else "—",
            f"{r['train_s']:.1f}" if trained else "—", note,
        ])  # fmt: skip
        if pretrained:
            first[-1].insert(2, _source(r))
            if _adapted(r):
                details.append(f"- {_code(r['model'])}: weights adapted ({_adapted(r)}).")
        if detail:
            details.append(f"- {_code(r['model'])}: {_md(detail)}")
    uncached = [_code(str(r["error"])[len(NOT_CACHED) :].strip(" ()")) for r in rows
                if r.get("status") == "no weights" and str(r.get("error") or "").startswith(NOT_CACHED)]  # fmt: skip
    if uncached:
        details.append(f"- weights not cached (registered, not in torch's hub cache; `download=True` fetches them): "
                       f"{', '.join(uncached)}.")  # fmt: skip
    second = [
        [_code(r["model"]), _md(" ".join(str(v) for v in (r.get("family"), r.get("year")) if v)),
         format_number(r.get("params")), format_number(r.get("flops")), _speed(r), f"{r.get('wall_s') or 0:.0f}",
         _md(r.get("ref_top1") or "—")]
        for r in rows
    ]  # fmt: skip
    cost_headers = ["model", "family, year", "params", "FLOPs/img", "train img/s", "cost s", "paper's figure"]
    parts = [render_table(headers, first, style="markdown"), "", render_table(cost_headers, second, style="markdown")]
    if details:
        parts += ["", *details]
    return "\n".join(parts)


def budget_prose(budget: Budget) -> str:
    """The "Reading it" paragraph of a run, from its saved budget: what each model got and what was capped."""
    cap = f"{budget.max_model_s:g} s"
    return (
        f"**This run's budget.** {budget.epochs} epoch{'s' if budget.epochs != 1 else ''} over a stratified "
        f"{budget.limit:,}-image subset of {budget.dataset}'s training split (fit holds 10% of it out to validate "
        f"on), scored once on a stratified {budget.test_limit:,}-image subset of the test split — the same images "
        f"for every model — with at most {cap} per model and seed. A model whose budget does not fit {cap} trains "
        f"the same epochs on a smaller subset, never below {budget.min_images:,} images (**capped**: its images are "
        f"in its row, and the plots draw it hollow); below that it is **too slow**. Models that finish in under "
        f"{budget.max_model_s / 2:g} s run {budget.seeds} seed{'s' if budget.seeds != 1 else ''}."
    )


def render_section(run_dir: str | Path, doc_dir: str | Path, img_dir: str | Path) -> tuple[str, list[Path]]:
    """The page section of one run directory (heading, command, machine, budget, cost, table, plots) and the
    plots written for it (``leaderboard-<run>-params.png``, ``-flops``, ``-time``, ``-curves``)."""
    run_dir, img_dir = Path(run_dir), Path(img_dir)
    results = leaderboard_results(run_dir)
    meta, rows = results.meta, results.rows
    budget = Budget(**{k: v for k, v in meta.items() if k in {f.name for f in dataclasses.fields(Budget)}})
    env_path = run_dir / "environment.json"
    env = json.loads(env_path.read_text()) if env_path.exists() else {}
    cmd_path = run_dir / "command.json"
    record = json.loads(cmd_path.read_text()) if cmd_path.exists() else {}
    command = record.get("command") or "python benchmarks/leaderboard.py"
    code = f", code {record['code']}" if record.get("code") else ""
    measured = [r for r in rows if r.get("top1") is not None]
    size = next((r.get("img_size") for r in measured if r.get("img_size")), meta.get("img_size"))
    device = next((r.get("device") for r in measured if r.get("device")), meta.get("device"))
    heading = f"{meta.get('dataset', '?')}, {size} px" if size else str(meta.get("dataset", "?"))
    heading += f", {device}" if device else ""
    finetune = FineTune(**meta["pretrained"]) if meta.get("pretrained") else None
    heading += ", fine-tuned from pretrained weights" if finetune else ""
    all_rows = read_rows(run_dir)
    cost = sum(r.get("wall_s") or 0.0 for r in all_rows)
    statuses = ("full", "capped", "stopped", "too slow", "error", "no weights")
    counts = {s: sum(1 for r in rows if r.get("status") == s) for s in statuses}
    machine = f"{env.get('cpu_count', '?')} CPU cores ({env.get('processor') or 'unknown CPU'})"
    if env.get("cuda"):
        machine = f"{env['cuda']} with {machine}"
    lines = [
        f"### {heading}",
        "",
        f"- **Command:** `{command}` (resumable: the same command skips the models already done; "
        "`--render-only` redraws this section and the plots from the saved rows)",
        f"- **Run:** {str(env.get('time', '?'))[:16].replace('T', ' ')} (its last start); {machine}; torch "
        f"{env.get('torch', '?')}, Python {env.get('python', '?')}, zoo {env.get('zoo', '?')}{code}",
        f"- **Budget:** {budget.describe(size)}.",
        *([f"- **Fine-tuning:** {finetune.describe()}."] if finetune else []),
        f"- **Cost:** {cost / 60:,.1f} min for {len(rows)} models ({len(all_rows)} model-seed runs): "
        f"{counts['full']} trained the whole budget, {counts['capped']} a subset sized to the cap, "
        f"{counts['stopped']} stopped early at twice the cap, "
        f"{counts['too slow']} too slow, {counts['error']} failed"
        + (f", {counts['no weights']} without usable weights" if finetune else "")
        + ". Per model: `train s` (zoo.fit's epochs, with "
        "validation) and `cost s` (everything: creation, speed probe, training, test).",
        "",
        budget_prose(budget),
        "",
        markdown_table(results, pretrained=finetune is not None),
        "",
        "`top-1 %`: test accuracy on the stratified test subset, the mean over the seeds run (± half their range "
        "when two or more were); `images`: the stratified training subset the model got (fit trained on 90% of "
        "it and validated on the rest). "
        "`paper's figure`: what the architecture's paper reports on its own dataset (top-1, or test error where "
        "the paper gives that), from the model card: not comparable with a few epochs at this size. "
        "`train img/s` is fit's median; `~… (probe)` a speed from a few timed steps at a small batch, for models "
        "not trained.",
        "",
    ]
    written = []
    if measured:
        stem = f"leaderboard-{run_dir.name}"
        plots = (("params", "parameters"), ("flops", "FLOPs"), ("train_s", "training time"))
        for key, what in plots:
            path = results.plot(img_dir / f"{stem}-{'time' if key == 'train_s' else key}.png", x=key,
                                title=f"{heading}: test top-1 vs {what}")  # fmt: skip
            written.append(path)
        shown = list(plots)
        if any(r.get("curve") for r in measured):  # rows saved before the curves were recorded have none
            written.append(results.plot_curves(img_dir / f"{stem}-curves.png", title=f"{heading}: training curves"))
            shown.append(("", "training curves"))
        for path, (_, what) in zip(written, shown, strict=True):
            rel = Path(os.path.relpath(path, doc_dir)).as_posix()
            alt = f"{heading}: test top-1 against {what}" if what != "training curves" else f"{heading}: {what}"
            lines.append(f"![{alt}]({rel})")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n", written


def render_page(run_dirs: Sequence[str | Path], doc_path: str | Path, img_dir: str | Path) -> list[Path]:
    """Write each run directory's section into ``doc_path`` between its markers (``<!-- leaderboard:<run> -->``
    ... ``<!-- /leaderboard:<run> -->``; the text around them is kept; a new run's section goes at the end), and
    the plots into ``img_dir``. Needs the saved rows only: nothing is trained. Returns the files written."""
    doc_path = Path(doc_path)
    text = doc_path.read_text() if doc_path.exists() else "# Leaderboard\n"
    written: list[Path] = []
    for run_dir in run_dirs:
        section, plots = render_section(run_dir, doc_path.parent, img_dir)
        written.extend(plots)
        start, end = f"<!-- leaderboard:{Path(run_dir).name} -->", f"<!-- /leaderboard:{Path(run_dir).name} -->"
        block = f"{start}\n{section}{end}"
        if start in text and end in text:
            text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    atomic_write(doc_path, text)
    return [doc_path, *written]
