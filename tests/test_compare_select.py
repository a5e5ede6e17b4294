"""Choosing what to compare (names, wildcards, families; the CLI's --family and --all) and labels that do not overlap
(the leaderboard's own tests are in test_leaderboard.py)."""

from __future__ import annotations

import json

import pytest

import zoo
from zoo.cli import main
from zoo.comparison import select_models

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
