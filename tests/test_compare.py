"""zoo.summary (FLOPs, parameters, layers), zoo.compare and Results (exports, plots, run directories)."""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.comparison import Results, render_table

# ---------------------------------------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------------------------------------


def test_linear_flops_count_a_multiply_add_as_two():
    s = zoo.summary(nn.Linear(10, 5), input_size=(1, 1, 10))
    assert s.flops == 2 * 10 * 5  # 50 multiply-adds
    assert s.total_params == 10 * 5 + 5
    s4 = zoo.summary(nn.Linear(10, 5), input_size=(1, 1, 10), batch_size=4)
    assert s4.flops == 4 * s.flops and s4.flops_per_image == s.flops


def test_lenet5_flops_match_the_hand_formula():
    model = zoo.create("lenet5")
    conv1, conv2 = model.conv1, model.conv2
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]

    def conv_flops(conv: nn.Conv2d, out_hw: int) -> int:
        k = conv.kernel_size[0] * conv.kernel_size[1]
        return 2 * conv.out_channels * out_hw * out_hw * conv.in_channels * k

    expected = conv_flops(conv1, 32 - 4) + conv_flops(conv2, 14 - 4)
    expected += sum(2 * m.in_features * m.out_features for m in linears)
    s = zoo.summary("lenet5")
    assert s.flops == expected
    assert s.flops_by_operator["convolution"] == conv_flops(conv1, 28) + conv_flops(conv2, 10)
    assert s.total_params == sum(p.numel() for p in model.parameters())
    assert s.input_size == (1, 32, 32) and s.output_shape == (1, 10)


def test_summary_layers_shapes_and_activation_memory():
    s = zoo.summary("lenet5", depth=2)
    by_name = {layer.name: layer for layer in s.layers}
    assert by_name["conv1"].output_shape == (1, 6, 28, 28)
    assert by_name["act2"].output_shape == (1, 16, 5, 5)
    assert by_name["fc3"].params == 84 * 10 + 10
    assert max(layer.depth for layer in s.layers) == 1  # the tutorial's flat layers: conv1 ... fc3
    assert s.activation_bytes >= 4 * (6 * 28 * 28 + 16 * 10 * 10 + 120 + 84 + 10)
    text = str(s)
    assert "conv1" in text and "61,706" in text and "FLOPs" in text and "MACs" not in text
    d = s.to_dict()
    assert json.loads(json.dumps(d))["flops"] == s.flops


def test_summary_of_a_created_model_uses_its_size_and_a_bare_module_needs_one():
    model = zoo.create("lenet5", in_chans=3, img_size=28)
    assert zoo.summary(model).input_size == (3, 28, 28)
    assert model.training  # summary puts the model back in the mode it found it in
    with pytest.raises(ValueError, match="input_size"):
        zoo.summary(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    with pytest.raises(zoo.UnknownModelError, match="lenet5"):
        zoo.summary("lenet6")


def test_summary_counts_attention():
    class Attention(nn.Module):
        def forward(self, x):  # x: N x L x D
            return torch.nn.functional.scaled_dot_product_attention(x, x, x)

    s = zoo.summary(Attention(), input_size=(1, 16, 8))
    # q @ k^T and attn @ v: two (16 x 8) @ (8 x 16)-sized products
    assert s.flops == 2 * (2 * 16 * 16 * 8)


# ---------------------------------------------------------------------------------------------------------
# Results (no training)
# ---------------------------------------------------------------------------------------------------------


def _results() -> Results:
    rows = [
        {"model": "mlp", "params": 535818, "flops": 1070080, "train_s": 1.5, "train_img_s": 9000.0,
         "latency_ms": 0.2, "throughput_img_s": 50000.0, "peak_mem_mb": None, "top1": 0.91, "top5": 0.99,
         "error": None, "dataset": "digits", "epochs": 1},
        {"model": "lenet5", "params": 61706, "flops": 833040, "train_s": 2.5, "train_img_s": 6000.0,
         "latency_ms": 0.4, "throughput_img_s": 20000.0, "peak_mem_mb": None, "top1": 0.95, "top5": 1.0,
         "error": None, "dataset": "digits", "epochs": 1},
        {"model": "broken", "error": "ValueError: too small", "dataset": "digits", "epochs": 1},
    ]  # fmt: skip
    return Results(rows, {"dataset": "digits"})


def test_results_exports_round_trip(tmp_path):
    res = _results()
    csv_text = res.to_csv(tmp_path / "r.csv")
    assert csv_text.splitlines()[0].startswith("model,params,flops")
    back = Results.from_csv(tmp_path / "r.csv")
    for a, b in zip(res.rows, back.rows):
        assert {k: v for k, v in a.items()} == {k: b[k] for k in a}
    res.to_json(tmp_path / "r.json")
    assert Results.from_json(tmp_path / "r.json") == res
    assert Results.from_json(res.to_json()).meta == {"dataset": "digits"}
    md = res.to_markdown()
    assert md.splitlines()[0].startswith("| model") and "61.7K" in md and "95.0" in md
    assert "ValueError: too small" in md and "n/a" in md
    assert "lenet5" in str(res) and res["lenet5"]["params"] == 61706


def test_to_pandas_or_a_clear_error():
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pandas"):
            _results().to_pandas()
    else:
        df = _results().to_pandas()
        assert list(df["model"]) == ["mlp", "lenet5", "broken"]


def test_plot_writes_png_and_svg(tmp_path):
    pytest.importorskip("matplotlib")
    res = _results()
    png = res.plot(tmp_path / "cmp.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    svg = res.plot(tmp_path / "cmp.svg")
    text = svg.read_text()
    assert "<svg" in text and "lenet5" in text
    with pytest.raises(ValueError, match=r"\.png"):
        res.plot(tmp_path / "cmp.txt")


def test_merge_prefers_the_newer_row():
    old = _results()
    new = Results([{"model": "lenet5", "top1": 0.97}, {"model": "alexnet", "top1": 0.9}])
    merged = old.merge(new)
    assert [r["model"] for r in merged] == ["mlp", "lenet5", "broken", "alexnet"]
    assert merged["lenet5"]["top1"] == 0.97


def test_render_table_styles():
    rows = [("a", "1,000"), ("bb", "5")]
    plain = render_table(("name", "n"), rows)
    assert plain.splitlines()[2] == "a     1,000"
    assert render_table(("name", "n"), rows, style="box").startswith("┌")
    assert render_table(("name", "n"), rows, style="markdown").splitlines()[1] == "|------|------:|"


# ---------------------------------------------------------------------------------------------------------
# compare (real training on the embedded digits, tiny settings)
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    from zoo.data import load_dataset

    return load_dataset("digits", img_size=16)


def _broken(*, num_classes=10, in_chans=3, img_size=32, drop_rate=0.0):
    """A model whose forward fails: its first layer expects 7 features."""
    return nn.Sequential(nn.Flatten(), nn.Linear(7, num_classes))


@pytest.fixture
def broken_plugin():
    import types

    @zoo.hookimpl
    def register_models(register):
        register("broken_for_compare", _broken, family="test", input_size=(1, 8, 8))

    zoo.register_plugin(types.SimpleNamespace(register_models=register_models), name="broken_plugin")
    yield "broken_for_compare"
    zoo.unregister_plugin("broken_plugin")


def test_compare_reports_a_failing_model_and_fills_the_others(digits, tmp_path, broken_plugin):
    res = zoo.compare(
        ["mlp", broken_plugin, "lenet5"],
        dataset=digits,
        epochs=1,
        batch_size=64,
        latency_runs=2,
        throughput_batch=8,
        run_dir=tmp_path / "run",
        progress=False,
    )
    assert [r["model"] for r in res] == ["mlp", "broken_for_compare", "lenet5"]
    err = res["broken_for_compare"]["error"]
    assert err and "\n" not in err and len(err) <= 200
    for name in ("mlp", "lenet5"):
        row = res[name]
        assert row["error"] is None
        assert row["params"] == sum(
            p.numel()
            for p in zoo.create(name, num_classes=10, in_chans=digits.in_chans, img_size=digits.img_size).parameters()
        )
        assert row["flops"] > 0 and row["train_s"] > 0 and row["train_img_s"] > 0
        assert row["latency_ms"] > 0 and row["throughput_img_s"] > 0
        assert 0.0 <= row["top5"] <= 1.0 and row["top1"] <= row["top5"]
        assert row["top1"] > 0.3  # one epoch on digits: far better than chance (0.1)
        assert row["threads"] in range(1, len(os.sched_getaffinity(0)) + 1)  # the threads fit trained with
    assert res["lenet5"]["peak_mem_mb"] is None or res["lenet5"]["peak_mem_mb"] > 0
    table = str(res)
    assert "top-1 %" in table and "broken_for_compare" in table and "error" in table

    # the run directory: reloaded without training; a second compare reuses rows and skips done models
    loaded = Results.load(tmp_path / "run")
    assert [r["model"] for r in loaded] == ["mlp", "broken_for_compare", "lenet5"]
    assert loaded["lenet5"] == json.loads(json.dumps(res["lenet5"]))
    assert json.loads((tmp_path / "run" / "environment.json").read_text())["torch"] == torch.__version__
    again = zoo.compare(["lenet5"], dataset=digits, epochs=1, batch_size=64, latency_runs=2, throughput_batch=8,
                        run_dir=tmp_path / "run", progress=False)  # fmt: skip
    assert again["lenet5"] == loaded["lenet5"]  # reused, not retrained (timings would differ)
    with pytest.raises(ValueError, match="epochs"):
        zoo.compare(["lenet5"], dataset=digits, epochs=2, batch_size=64, run_dir=tmp_path / "run", progress=False)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [({"epoch": 1}, TypeError, r"unknown option 'epoch'.*did you mean 'epochs'\?"), ({"lr": -1}, ValueError, "lr")],
)
def test_compare_checks_fit_options_before_the_first_model(options, error, message, monkeypatch):
    import zoo.comparison.run as run

    trained = []
    monkeypatch.setattr(run, "measure_model", lambda *a, **k: trained.append(a) or {})
    with pytest.raises(error, match=message):
        zoo.compare(["mlp", "lenet5"], dataset="digits", **options)
    assert trained == []  # refused before any model, not once per row
