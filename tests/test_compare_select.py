"""Choosing what to compare (names, wildcards, families; the CLI's --family and --all), the leaderboard's plan,
resumable run directory and rows for failing models, rendering from saved rows, and labels that do not overlap."""

from __future__ import annotations

import json
import types

import pytest
import torch.nn as nn

import zoo
from zoo.cli import main
from zoo.comparison import leaderboard as lb, select_models
from zoo.comparison.leaderboard_page import render_page

# ---------------------------------------------------------------------------------------------------------
# select_models, zoo.compare(family=...), zoo compare --family
# ---------------------------------------------------------------------------------------------------------


def test_wildcards_families_and_exact_names_keep_the_order_asked_for():
    b_series = [f"efficientnet_b{i}" for i in range(8)]
    assert select_models("efficientnet_b*") == b_series
    assert select_models(family="efficientnet") == zoo.list_models(family="efficientnet")
    assert select_models(["mlp", "lenet?", "mlp"], family=["lenet"]) == ["mlp", "lenet5"]
    assert select_models(["vit_*_patch16"]) == zoo.list_models("vit_*_patch16")
    assert select_models(["mobilenet_v3_*", "alexnet"])[-1] == "alexnet"


@pytest.mark.parametrize(
    ("names", "family", "error", "message"),
    [
        (["nonesuch_*"], None, ValueError, "no model matches 'nonesuch_\\*'"),
        ([], "efficientnett", ValueError, r"no model of family 'efficientnett'; did you mean 'efficientnet'\?"),
        (["lenet"], None, zoo.UnknownModelError, "did you mean 'lenet5'"),
    ],
)
def test_selection_errors_are_one_line_and_come_before_training(names, family, error, message):
    with pytest.raises(error, match=message) as info:
        select_models(names, family=family)
    assert "\n" not in str(info.value)


def test_compare_takes_a_family_and_a_wildcard(tmp_path):
    data = zoo.load_dataset("digits", img_size=16, limit=200)
    res = zoo.compare("mlp*", dataset=data, epochs=1, family="lenet", latency_runs=0, progress=False)
    assert [r["model"] for r in res] == ["mlp", "lenet5"]
    row = res["lenet5"]
    assert row["error"] is None and row["family"] == "lenet"
    assert [e["epoch"] for e in row["curve"]] == [1] and row["curve"][0]["seconds"] > 0
    back = zoo.Results.from_csv(res.to_csv(tmp_path / "r.csv") and tmp_path / "r.csv")
    assert back["lenet5"]["curve"][0]["epoch"] == 1  # the curve survives a CSV round trip


def test_cli_compare_family_and_its_errors(capsys):
    argv = ["compare", "--family", "lenet", "--dataset", "digits", "--limit", "100", "--epochs", "1"]
    assert main([*argv, "--format", "json", "--img-size", "16"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["model"] for r in rows] == ["lenet5"] and rows[0]["top1"] is not None
    for bad, words in (
        (["compare", "--dataset", "digits"], "name the models to compare"),
        (["compare", "nonesuch*", "--dataset", "digits"], "no model matches 'nonesuch*'"),
        (["compare", "--family", "nope", "--dataset", "digits"], "no model of family 'nope'"),
    ):
        assert main(bad) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1


# ---------------------------------------------------------------------------------------------------------
# The leaderboard: plan, rows, resume
# ---------------------------------------------------------------------------------------------------------


def test_plan_trains_everything_caps_or_calls_a_model_too_slow():
    budget = lb.Budget(epochs=2, max_model_s=60, min_images=500)
    assert lb.plan_images(6000, budget, 1000, 10_000, 40_000)[:2] == ("full", 6000)
    status, n, est = lb.plan_images(6000, budget, 1000, 100, 400)
    assert status == "capped" and 500 <= n < 6000 and n % 10 == 0 and est <= 60
    assert lb.plan_images(6000, budget, 1000, 2, 8)[0] == "too slow"


def test_reference_top1_reads_entries_as_objects_or_dicts():
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


def test_leaderboard_records_failures_resumes_and_renders_without_training(tmp_path, boom_plugin, monkeypatch):
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


def test_a_missing_dataset_fails_in_one_line_before_the_run_directory(tmp_path, isolated_data):
    with pytest.raises(FileNotFoundError) as info:
        lb.run_leaderboard(["mlp"], lb.Budget(dataset="cifar10"), tmp_path / "run", log=lambda s: None)
    assert "\n" not in str(info.value) and not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------------------
# Labels that do not overlap
# ---------------------------------------------------------------------------------------------------------


def test_labels_of_crowded_points_do_not_overlap(tmp_path, monkeypatch):
    import zoo.comparison.plots as plots

    rows = [{"model": f"model_{i}", "family": "f" + str(i % 3), "params": 1e5 * (1 + 0.05 * i),
             "flops": 1e6 * (1 + 0.05 * i), "top1": 0.85 + 0.002 * (i % 4)} for i in range(8)]  # fmt: skip
    rows += [{"model": "lenet5", "params": 61706, "flops": 833040, "top1": 0.950},
             {"model": "mlp", "params": 658698, "flops": 1315840, "top1": 0.961}]  # fmt: skip
    captured = []
    real = plots.place_labels
    monkeypatch.setattr(plots, "place_labels", lambda *a, **k: captured.append(real(*a, **k)) or captured[-1])
    plots.plot_accuracy(rows, tmp_path / "p.png")
    assert len(captured) == 2  # params and FLOPs panels
    for texts in captured:
        renderer = texts[0].figure.canvas.get_renderer()
        boxes = [plots.text_box(t, renderer) for t in texts]
        assert len(boxes) == len(rows)
        for i, a in enumerate(boxes):
            assert all(not a.overlaps(b) for b in boxes[i + 1 :]), texts[i].get_text()


def test_deadline_stops_fit_at_the_first_epoch_end_past_it():
    history = zoo.train.callbacks.History()
    lb.Deadline(until=0.0).on_epoch_end(history, {"epoch": 2})
    assert history.stop_reason and "time cap" in history.stop_reason
