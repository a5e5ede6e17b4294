"""The leaderboard (benchmarks/leaderboard_run.py, leaderboard_page.py): plan, rows, resume, the rendered page."""

from __future__ import annotations

import importlib
import types
from pathlib import Path

import pytest
import torch.nn as nn

import zoo

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def lb():
    """benchmarks/leaderboard_run.py, imported as benchmarks/leaderboard.py imports it (its folder on the path)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCHMARKS))
        yield importlib.import_module("leaderboard_run")


@pytest.fixture(scope="module")
def render_page(lb):
    return importlib.import_module("leaderboard_page").render_page


def test_plan_trains_everything_caps_or_calls_a_model_too_slow(lb):
    budget = lb.Budget(epochs=2, max_model_s=60, min_images=500)
    assert lb.plan_images(6000, budget, 1000, 10_000, 40_000)[:2] == ("full", 6000)
    status, n, est = lb.plan_images(6000, budget, 1000, 100, 400)
    assert status == "capped" and 500 <= n < 6000 and n % 10 == 0 and est <= 60
    assert lb.plan_images(6000, budget, 1000, 2, 8)[0] == "too slow"


def test_reference_top1_reads_entries_as_objects_or_dicts(lb):
    entry = types.SimpleNamespace(dataset="ImageNet-1k", metric="acc@1", value=77.692, source="torchvision")
    mnist = {"dataset": "MNIST", "metric": "test error %", "value": 0.95, "source": "LeCun et al. 1998"}
    assert lb.reference_top1(types.SimpleNamespace(reported=(mnist, entry))) == "77.7 (ImageNet-1k)"
    assert lb.reference_top1(types.SimpleNamespace(reported=[mnist])) == "0.95 test error % (MNIST)"
    assert lb.reference_top1(types.SimpleNamespace()) is None


class _Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom in forward")


@pytest.fixture
def boom_plugin():
    @zoo.hookimpl
    def register_models(register):
        register("boom_net", lambda **kw: _Boom(), family="test", input_size=(1, 16, 16))

    zoo.register_plugin(types.SimpleNamespace(register_models=register_models), name="boom_plugin")
    yield "boom_net"
    zoo.unregister_plugin("boom_plugin")


@pytest.mark.slow
def test_leaderboard_records_failures_resumes_and_renders_without_training(
    tmp_path, boom_plugin, monkeypatch, lb, render_page
):
    budget = lb.Budget(dataset="digits", img_size=16, limit=300, test_limit=100, epochs=1, max_model_s=120,
                       min_images=50, seeds=2)  # fmt: skip
    run = tmp_path / "run"
    lines: list[str] = []
    rows = lb.run_leaderboard(["lenet5", boom_plugin], budget, run, log=lines.append, command="lb --x")
    by = {(r["model"], r["seed"]): r for r in rows}
    assert by[("lenet5", 0)]["status"] == "full" and by[("lenet5", 0)]["top1"] > 0.2
    assert ("lenet5", 1) in by  # fast enough for a second seed
    boom = by[("boom_net", 0)]
    assert boom["status"] == "error" and "boom in forward" in boom["error"] and ("boom_net", 1) not in by
    assert any("boom_net seed 0: error" in line for line in lines)

    # resumed: nothing is run again, failures included; --retry-failed runs only those
    calls = []

    def fake_run_model(name, *args, **kwargs):
        calls.append(name)
        return {"model": name, "seed": 0, "status": "error", "error": "still broken", "wall_s": 0.0}

    monkeypatch.setattr(lb, "run_model", fake_run_model)
    assert len(lb.run_leaderboard(["lenet5", boom_plugin], budget, run, log=lines.append)) == 3 and calls == []
    lb.run_leaderboard(["lenet5", boom_plugin], budget, run, log=lines.append, retry_failed=True)
    assert calls == ["boom_net"]
    with pytest.raises(ValueError, match="other settings"):
        lb.run_leaderboard(["lenet5"], lb.Budget(dataset="digits", img_size=16, epochs=2), run, log=lines.append)

    # a torn last line (a crash mid-append) is ignored
    with open(run / lb.ROWS_FILE, "a") as f:
        f.write('{"model": "torn')
    table = lb.leaderboard_results(run)
    assert [r["model"] for r in table][0] == "lenet5" and table["lenet5"]["top1_seeds"] == 2

    # rendering needs the saved rows only; prose around the markers is kept
    doc = tmp_path / "docs" / "leaderboard.md"
    doc.parent.mkdir()
    doc.write_text("# Leaderboard\n\nintro\n\n<!-- leaderboard:run -->\nold\n<!-- /leaderboard:run -->\n\noutro\n")
    written = render_page([run], doc, tmp_path / "docs" / "img")
    text = doc.read_text()
    assert "intro" in text and "outro" in text and "old" not in text and "`lb --x`" in text
    assert "| 1 | `lenet5`" in text and "still broken" in text and "±" in text
    assert all(p.exists() for p in written) and len(written) == 5


def test_a_missing_dataset_fails_in_one_line_before_the_run_directory(tmp_path, isolated_data, lb):
    with pytest.raises(FileNotFoundError) as info:
        lb.run_leaderboard(["mlp"], lb.Budget(dataset="cifar10"), tmp_path / "run", log=lambda s: None)
    assert "\n" not in str(info.value) and not (tmp_path / "run").exists()


def test_deadline_stops_fit_at_the_first_epoch_end_past_it(lb):
    history = zoo.train.callbacks.History()
    lb.Deadline(until=0.0).on_epoch_end(history, {"epoch": 2})
    assert history.stop_reason and "time cap" in history.stop_reason
