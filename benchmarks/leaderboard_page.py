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
from leaderboard_transfer import FineTune

from zoo.comparison.markdown import markdown_code, markdown_text
from zoo.comparison.results import Results
from zoo.comparison.tables import format_number, render_table
from zoo.files import atomic_write


def _md(text: Any) -> str:
    return markdown_text(text)  # rows are read from a file: a name may hold markdown or HTML


def _note(row: dict[str, Any]) -> str:
    status = row.get("status")
    if status == "capped":
        return f"capped: {row.get('images', 0):,} images to fit the time cap"
    if status == "too slow":
        return f"too slow: the budget would take ~{row.get('estimate_s') or 0:,.0f} s"
    if status == "stopped":
        return f"stopped after {row.get('epochs_done')} epoch(s) of {row.get('epochs')}: past twice the cap"
    return _md(row.get("error") or "")


def _source(row: dict[str, Any]) -> str:
    """The "fine-tuned from" cell: the weights' name and the data they were trained on."""
    if not row.get("weights"):
        return "—"
    shown = markdown_code(row["weights"])
    if row.get("weights_dataset"):
        shown += f" ({_md(row['weights_dataset'])})"
    elif row.get("weights_sha256"):
        shown += f" (file, sha256 {row['weights_sha256'][:12]})"
    transfer = row.get("transfer") or {}
    adapted = ["new head"] if transfer.get("fresh") else []
    if transfer.get("stem"):
        adapted.append(f"stem {transfer['stem'][1]}→{transfer['stem'][2]} channels")
    if transfer.get("pos_embed"):
        adapted.append("position embeddings resampled")
    return shown + (f"; {', '.join(adapted)}" if adapted else "")


def markdown_table(results: Results, pretrained: bool = False) -> str:
    """The leaderboard as a GitHub table: one row per model, best measured top-1 first; a pretrained run's has a
    "fine-tuned from" column (the weights each model started from)."""
    headers = ["#", "model", "family", "year", "params", "FLOPs/img", "train images", "top-1 %", "ref. top-1",
               "train s", "train img/s", "cost s", "note"]  # fmt: skip
    if pretrained:
        headers.insert(2, "fine-tuned from")
    body = []
    for i, r in enumerate(results.rows, 1):
        top1 = "—"
        if r.get("top1") is not None:
            top1 = f"{100 * r['top1']:.1f}"
            if r.get("top1_spread") is not None:
                top1 += f" ± {100 * r['top1_spread']:.1f}"
        speed = "—"
        if r.get("train_img_s"):
            speed = f"{r['train_img_s']:,.0f}"
        elif r.get("probe_train_img_s"):
            speed = f"~{r['probe_train_img_s']:,.1f} (probe)" if r["probe_train_img_s"] < 10 else (
                f"~{r['probe_train_img_s']:,.0f} (probe)")  # fmt: skip
        trained = r.get("train_s") is not None
        body.append([
            str(i) if r.get("top1") is not None else "",
            markdown_code(r["model"]), _md(r.get("family") or ""), str(r.get("year") or ""),
            format_number(r.get("params")),
            format_number(r.get("flops")), f"{int(0.9 * r['images']):,}" if trained and r.get("images") else "—",
            top1, _md(r.get("ref_top1") or "—"), f"{r['train_s']:.1f}" if trained else "—", speed,
            f"{r.get('wall_s') or 0:.0f}", _note(r),
        ])  # fmt: skip
        if pretrained:
            body[-1].insert(2, _source(r))
    return render_table(headers, body, style="markdown")


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
        markdown_table(results, pretrained=finetune is not None),
        "",
        "`top-1 %`: test accuracy on the stratified test subset, the mean over the seeds run (± half their range "
        "when two or more were); `ref. top-1`: the figure reported for the architecture on its own dataset, from "
        "the model card, not comparable with a few epochs at this size. `train img/s` is fit's median; `~… "
        "(probe)` a speed from a few timed steps at a small batch, for models not trained.",
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
        written.append(results.plot_curves(img_dir / f"{stem}-curves.png", title=f"{heading}: training curves"))
        for path, (_, what) in zip(written, (*plots, ("", "training curves")), strict=True):
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
