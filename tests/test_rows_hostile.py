"""Rows files and run directories as untrusted input: compare's results.jsonl and config.json, the leaderboard's
rows.jsonl; forged values are skipped with their line number, names reach markdown escaped."""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import re
from pathlib import Path

import pytest

import zoo
from zoo.comparison.markdown import markdown_code, markdown_text
from zoo.comparison.results import Results
from zoo.comparison.rowsfile import RowWarning, read_config

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPT = "<script>alert(1)</script>"


def good_row(model: str = "mlp", **fields) -> dict:
    row = {"model": model, "params": 1000, "flops": 2000, "train_s": 1.5, "train_img_s": 900.0, "latency_ms": 0.2,
           "throughput_img_s": 5000.0, "peak_mem_mb": None, "top1": 0.9, "top5": 1.0, "error": None, "family": "mlp",
           "curve": [{"epoch": 1, "seconds": 1.5, "loss": 0.3, "accuracy": 0.9, "val_loss": None,
                      "val_accuracy": 0.88}],
           "dataset": "digits", "epochs": 1, "img_size": 8, "device": "cpu", "precision": "fp32", "threads": 1,
           "batch_size": 64, "throughput_batch": 4}  # fmt: skip
    return row | fields


FORGED = [
    ("top1", "abc", "top1='abc': expected a fraction in [0, 1]"),
    ("top1", 5.0, "top1=5.0: expected a fraction in [0, 1]"),
    ("top1", -0.1, "top1=-0.1"),
    ("top5", math.nan, "top5=nan"),
    ("params", -1, "params=-1: expected an integer >= 0"),
    ("params", 1.5, "params=1.5"),
    ("params", True, "params=True"),
    ("params", "many", "params='many'"),
    ("flops", math.inf, "flops=inf: expected a finite number >= 0"),
    ("train_s", -3, "train_s=-3"),
    ("threads", 0, "threads=0: expected an integer >= 1"),
    ("img_size", "32", "img_size='32'"),
    ("epochs", [1], "epochs=[1]"),
    ("curve", "x", "curve='x': expected a list of records"),
    ("curve", [{"epoch": "one"}], "curve=[{'epoch': 'one'}]"),
    ("error", {"a": 1}, "error={'a': 1}: expected a string"),
    ("model", 5, "model=5: expected a non-empty string"),
    ("model", "", "model=''"),
    ("model", "a\nb", "model='a\\nb': expected a name"),
    ("family", ["x"], "family=['x']"),
]


def write_lines(path: Path, rows: list) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize(("field", "value", "message"), FORGED, ids=[f"{f}={v!r}" for f, v, _ in FORGED])
def test_a_forged_compare_row_is_skipped_with_its_line_number(tmp_path, field, value, message):
    write_lines(tmp_path / "results.jsonl", [good_row("mlp"), good_row("lenet5") | {field: value}, good_row("cnn")])
    with pytest.warns(RowWarning) as caught:
        results = Results.load(tmp_path)
    assert [r["model"] for r in results] == ["mlp", "cnn"]
    (text,) = [str(w.message) for w in caught]
    assert "\n" not in text and "results.jsonl: line 2 skipped" in text and message in text


def test_a_forged_row_does_not_hide_the_good_one_before_it(tmp_path):
    write_lines(tmp_path / "results.jsonl", [good_row("mlp", top1=0.5), good_row("mlp", top1=5.0)])
    with pytest.warns(RowWarning, match="line 2 skipped"):
        assert Results.load(tmp_path)["mlp"]["top1"] == 0.5


def test_a_resumed_compare_measures_a_forged_row_again(tmp_path):
    run = tmp_path / "run"
    data = zoo.load_dataset("digits", img_size=8, limit=60)
    kwargs = {"dataset": data, "epochs": 1, "batch_size": 32, "latency_runs": 0, "progress": False, "run_dir": run}
    first = zoo.compare(["mlp"], **kwargs)
    forged = dict(first["mlp"], top1=5.0)
    with open(run / "results.jsonl", "a") as f:
        f.write(json.dumps(forged) + "\n")
    with pytest.warns(RowWarning, match="line 2 skipped: top1=5.0"):
        again = zoo.compare(["mlp"], **kwargs)
    assert again["mlp"] == first["mlp"]  # the good row was kept; the forged one never shown


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "holds a JSON list, not an object"),
        ('"x"', "JSON str"),
        (b"\xff\xfe\x00", "not JSON"),
    ],  # fmt: skip
)
def test_a_run_directory_whose_config_is_not_an_object_is_one_line(tmp_path, content, message):
    run = tmp_path / "run"
    run.mkdir()
    write_lines(run / "results.jsonl", [good_row()])
    path = run / "config.json"
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    for attempt in (
        lambda: Results.load(run),
        lambda: zoo.compare(["mlp"], dataset="digits", img_size=8, epochs=1, latency_runs=0, run_dir=run),
    ):
        with pytest.raises(ValueError) as info:
            attempt()
        text = str(info.value)
        assert "\n" not in text and str(path) in text and message in text


def test_read_config_returns_the_object(tmp_path):
    (tmp_path / "c.json").write_text('{"epochs": 2}')
    assert read_config(tmp_path / "c.json") == {"epochs": 2}


def test_from_json_and_from_csv_check_rows_too(tmp_path):
    text = json.dumps({"meta": {}, "rows": [good_row("mlp"), good_row("bad", params=-5)]})
    with pytest.warns(RowWarning, match="row 2 skipped: params=-5"):
        assert [r["model"] for r in Results.from_json(text)] == ["mlp"]
    for i, bad in enumerate(("[1, 2]", '{"rows": 3}', '{"rows": [], "meta": [1]}', "{oops")):
        (tmp_path / f"{i}.json").write_text(bad)
        with pytest.raises(ValueError, match=f"{i}.json is not (a comparison|JSON)"):
            Results.from_json(tmp_path / f"{i}.json")
    Results([good_row("mlp"), good_row("bad", top1=7)]).to_csv(tmp_path / "r.csv")
    with pytest.warns(RowWarning, match="r.csv: line 3 skipped: top1=7"):
        assert [r["model"] for r in Results.from_csv(tmp_path / "r.csv")] == ["mlp"]
    Results([good_row("10", dataset="2024")]).to_csv(tmp_path / "n.csv")  # names that look like numbers stay names
    assert Results.from_csv(tmp_path / "n.csv")[0]["model"] == "10"


# ---------------------------------------------------------------------------------------------------------
# Markdown: names show as written, in their own cell
# ---------------------------------------------------------------------------------------------------------


def cells(line: str) -> list[str]:
    """The cells of a markdown table line (a ``|`` escaped with a backslash stays inside its cell)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def html_of(markdown_text_: str) -> str:
    markdown = pytest.importorskip("markdown")
    return markdown.markdown(markdown_text_, extensions=["tables"])


NASTY = [SCRIPT, "a|b", "x`y``z", "[click](javascript:alert(1))", "<img src=x onerror=alert(1)>", "**bold** _it_"]


@pytest.mark.parametrize("name", NASTY)
def test_to_markdown_escapes_names_and_errors(name):
    results = Results([good_row(name), good_row("ok", error=name, top1=None)])
    table = results.to_markdown()
    lines = table.splitlines()
    assert len({len(cells(line)) for line in lines}) == 1  # every row has the header's cells
    html = html_of(table)
    assert "<script" not in html and "<img" not in html and "<a " not in html and "<strong>" not in html
    assert "<em>" not in html


@pytest.mark.parametrize("name", NASTY)
def test_markdown_helpers_show_the_text_as_written(name):
    html = html_of(f"{markdown_text(name)}\n\n{markdown_code(name)}")
    assert "<script" not in html and "<img" not in html and "<a " not in html and "<strong>" not in html
    import html as html_module

    shown = html_module.unescape(re.sub(r"<[^>]+>", "", html))
    assert name in shown or name.replace("|", "\\|") in shown  # Python-Markdown keeps the backslash in code


# ---------------------------------------------------------------------------------------------------------
# The leaderboard's rows.jsonl and page
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lb():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCHMARKS))
        yield importlib.import_module("leaderboard_run")


def board_row(model: str, **fields) -> dict:
    row = good_row(model) | {"seed": 0, "status": "full", "images": 200, "estimate_s": 3.0, "wall_s": 4.0,
                             "probe_train_img_s": 500.0, "probe_infer_img_s": 2000.0, "slowdown": 1.0}  # fmt: skip
    return row | fields


LEADERBOARD_FORGED = [
    ("images", "many", "images='many'"),
    ("top1", 5.0, "top1=5.0"),
    ("params", -1, "params=-1"),
    ("seed", "x", "seed='x'"),
    ("status", "best", "status='best': expected one of full"),
    ("wall_s", -1, "wall_s=-1"),
    ("weights_sha256", SCRIPT, "weights_sha256="),
    ("transfer", {"stem": "abc"}, "transfer="),
]


@pytest.mark.parametrize(("field", "value", "message"), LEADERBOARD_FORGED, ids=[f for f, _, _ in LEADERBOARD_FORGED])
def test_a_forged_leaderboard_row_is_skipped_with_its_line_number(lb, tmp_path, field, value, message):
    write_lines(tmp_path / lb.ROWS_FILE, [board_row("mlp"), board_row("lenet5") | {field: value}])
    with pytest.warns(RowWarning) as caught:
        rows = lb.read_rows(tmp_path)
    assert [r["model"] for r in rows] == ["mlp"]
    assert any(f"rows.jsonl: line 2 skipped: {message}" in str(w.message) for w in caught)


def test_the_leaderboard_page_escapes_names(lb, tmp_path):
    render_page = importlib.import_module("leaderboard_page").render_page
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(lb.Budget(dataset="digits"))))
    rows = [board_row("a|b", family=SCRIPT, top1=0.8), board_row(SCRIPT, family="[x](javascript:alert(1))"),
            board_row("lenet5", status="error", top1=None, error="<img src=x onerror=alert(1)> | broken")]  # fmt: skip
    write_lines(run / lb.ROWS_FILE, rows)
    doc = tmp_path / "leaderboard.md"
    render_page([run], doc, tmp_path / "img")
    text = doc.read_text()
    tables, block = [], []
    for line in [*text.splitlines(), ""]:  # the page's tables: runs of lines starting with '|'
        if line.startswith("|"):
            block.append(line)
        elif block:
            tables, block = [*tables, block], []
    assert tables and all(len({len(cells(line)) for line in table}) == 1 for table in tables)
    assert sum(len(table) - 2 for table in tables if "model" in table[0]) >= 3  # every model has its row
    html = html_of(text)
    assert "<script" not in html and "<img src=x" not in html and '<a href="javascript' not in html


@pytest.mark.parametrize("name", ["results.jsonl", "config.json"])
@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_run_directory_file_that_is_no_regular_file_is_refused_not_read(tmp_path, name, kind):
    import os

    run = tmp_path / "run"
    run.mkdir()
    write_lines(run / "results.jsonl", [good_row()])
    (run / name).unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(run / name)  # reading it would block for ever
    else:
        (run / name).mkdir()
    with pytest.raises(ValueError, match=f"'{run / name}' is not a regular file"):
        Results.load(run)


def test_json_nested_too_deep_or_numbers_too_long_are_one_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    deep = "[" * 100_000 + "]" * 100_000
    (run / "results.jsonl").write_text(f'{{"model": "x", "top1": {deep}}}\n' + json.dumps(good_row()) + "\n")
    with pytest.raises(ValueError, match="line 1 is not a result row; the file is damaged"):
        Results.load(run)
    (run / "results.jsonl").write_text(json.dumps(good_row()) + "\n")
    for content in (deep, '{"epochs": ' + "9" * 5000 + "}"):
        (run / "config.json").write_text(content)
        with pytest.raises(ValueError, match="config.json' is not JSON zoo reads"):
            Results.load(run)


def test_the_leaderboard_command_says_which_rows_it_skipped_in_one_line_each(lb, tmp_path, capsys):
    cli = importlib.import_module("leaderboard")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(lb.Budget(dataset="digits"))))
    write_lines(run / lb.ROWS_FILE, [board_row("mlp"), board_row("lenet5", images="many")])
    doc = tmp_path / "leaderboard.md"
    argv = ["--render-only", "--run-dir", str(run), "--doc", str(doc), "--img-dir", str(tmp_path / "img")]
    assert cli.main(argv) == 0
    warnings_ = [line for line in capsys.readouterr().err.splitlines() if line.startswith("leaderboard: warning:")]
    assert any(
        line.endswith("rows.jsonl: line 2 skipped: images='many': expected an integer >= 0") for line in warnings_
    )
    assert "`mlp`" in doc.read_text() and "lenet5" not in doc.read_text()
    (run / "config.json").write_text("[1]")
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("leaderboard: error: ValueError: '") and "holds a JSON list" in err
