"""Plots of comparisons (zoo/comparison/plots.py) are honest: the accuracy axis is the whole 0-100 scale, models
trained on fewer images are drawn apart and say so, and titles name the models and the dataset."""

from __future__ import annotations

import pytest

import zoo.plotting
from zoo.comparison import plots

pytest.importorskip("matplotlib")


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions save, kept for inspection."""
    kept = []
    real = zoo.plotting.save_figure

    def keep(fig, path, dpi=110):
        kept.append(fig)
        return real(fig, path, dpi=dpi)

    monkeypatch.setattr(zoo.plotting, "save_figure", keep)
    return kept


def _rows():
    # a two-point gap at the top (68-80%): the old axis zoomed to 62-84 and ran past 100 for a 100% point
    curve = [{"epoch": 1, "seconds": 2.0, "val_accuracy": 0.6}, {"epoch": 2, "seconds": 4.0, "val_accuracy": 0.8}]
    return [
        dict(model="mlp", family="mlp", params=5e5, flops=1e6, train_s=5.0, top1=0.80, images=6000, status="full",
             dataset="fashion-mnist", epochs=2, curve=curve),
        dict(model="lenet5", family="lenet", params=6e4, flops=8e5, train_s=7.0, top1=0.78, images=6000,
             status="full", dataset="fashion-mnist", epochs=2, curve=curve),
        dict(model="alexnet", family="alexnet", params=5.7e7, flops=4.4e8, train_s=120.0, top1=0.68, images=1950,
             status="capped", dataset="fashion-mnist", epochs=2, curve=curve),
    ]  # fmt: skip


def _hollow(artist) -> bool:
    face = artist.get_markerfacecolor()
    return isinstance(face, str) and face == "none"


def test_accuracy_axes_span_0_to_100_and_capped_models_are_hollow(tmp_path, figures):
    plots.plot_accuracy(_rows(), tmp_path / "acc.png", x=("params", "train_s"))
    (fig,) = figures
    for ax in fig.axes[:2]:
        assert ax.get_ylim() == (0.0, 100.0)
        lines = [line for line in ax.get_lines() if line.get_marker() == "o"]
        hollow = [line for line in lines if _hollow(line)]
        assert [tuple(line.get_xdata()) for line in hollow] in ([(5.7e7,)], [(120.0,)])  # alexnet only
        texts = [t.get_text() for t in ax.texts]
        assert "alexnet (1,950 img)" in texts and "mlp" in texts and "lenet5" in texts
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any(t.startswith("trained on fewer images") for t in legend) and "alexnet" in legend
    assert fig._suptitle.get_text().startswith("accuracy vs parameters and training time of mlp, lenet5 and alexnet")
    assert "fashion-mnist" in fig._suptitle.get_text()


def test_without_capped_models_there_is_no_capped_legend_entry(tmp_path, figures):
    rows = [r for r in _rows() if r["status"] == "full"]
    plots.plot_accuracy(rows, tmp_path / "acc.png", x="params")
    legend = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    assert legend == ["mlp", "lenet"]


def test_curves_span_0_to_100_dash_capped_models_and_name_them(tmp_path, figures):
    plots.plot_curves(_rows()[::-1], tmp_path / "curves.png")
    (fig,) = figures
    ax = fig.axes[0]
    assert ax.get_ylim() == (0.0, 100.0)
    styles = {line.get_label(): (line.get_linestyle(), _hollow(line)) for line in ax.get_lines()}
    assert styles["alexnet"] == ("--", True) and styles["mlp"] == ("-", False)
    assert fig._suptitle.get_text() == "training curves of alexnet, lenet5 and mlp on fashion-mnist, 2 epochs"


def test_fewer_images_reads_the_status_or_the_counts():
    rows = [{"images": 100}, {"images": 50}, {"status": "capped"}, {}]
    assert plots.fewer_images(rows) == [False, True, True, False]


def test_names_with_dollar_signs_are_drawn_as_written(tmp_path, figures):
    """A model, family or dataset name from a rows file is text, not matplotlib mathtext (``a$\\frac$b`` raised
    a multi-line ParseSyntaxException while the figure was drawn)."""
    rows = _rows()
    rows[0].update(model="a$\\frac$b", family="x$y", dataset="d$s")
    rows[1]["dataset"] = rows[2]["dataset"] = "d$s"
    plots.plot_accuracy(rows, tmp_path / "acc.png", x="params")
    plots.plot_curves(rows, tmp_path / "curves.png")
    assert (tmp_path / "acc.png").stat().st_size > 0 and (tmp_path / "curves.png").stat().st_size > 0
    texts = [t.get_text() for t in figures[0].axes[0].texts]
    assert "a\\$\\frac\\$b" in texts  # escaped, so drawn as the characters a$\frac$b


# the leaderboard's 30 models (training time s, top-1 %, images when capped) on 2 shared cores: crowded corners
LEADERBOARD = {
    "alexnet": (85.1, 76.8, 4410), "densenet121": (63.8, 66.6, 660), "densenet161": (50.7, 27.2, 130),
    "densenet169": (70.7, 48.0, 500), "densenet201": (24.5, 32.0, 100), "densenet_bc_100_k12": (62.9, 71.0, 1340),
    "efficientnet_b0": (32.8, 46.4, 3870), "efficientnet_b1": (42.4, 40.2, 3340), "efficientnet_b2": (47.6, 56.0, 2700),
    "efficientnet_b3": (46.0, 14.0, 1670), "efficientnet_b4": (59.3, 12.0, 1430), "efficientnet_b5": (70.2, 12.0, 1050),
    "efficientnet_b6": (70.1, 12.2, 810), "efficientnet_b7": (63.6, 9.8, 580), "googlenet": (93.3, 66.8, 1890),
    "lenet5": (0.8, 77.6, None), "mlp": (0.5, 80.2, None), "mobilenet_v1": (34.8, 80.8, None),
    "mobilenet_v2": (41.1, 82.0, None), "mobilenet_v3_large": (36.3, 77.6, None),
    "mobilenet_v3_small": (17.7, 77.6, None), "resnet110": (64.3, 76.8, 3600), "resnet20": (20.4, 77.6, None),
    "resnet32": (29.0, 79.6, None), "resnet44": (38.6, 79.8, None), "resnet56": (47.6, 80.2, None),
    "vit_base_patch16": (34.2, 17.4, 120), "vit_base_patch32": (39.5, 9.2, 140),
    "vit_small_patch16": (72.0, 20.8, 880), "vit_tiny_patch16": (66.8, 26.6, 2440),
}  # fmt: skip


@pytest.mark.slow
def test_crowded_labels_neither_overlap_nor_cross_each_others_leader_lines():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    xs, ys = [v[0] for v in LEADERBOARD.values()], [v[1] for v in LEADERBOARD.values()]
    labels = [f"{k} ({n:,} img)" if n else k for k, (_, _, n) in LEADERBOARD.items()]
    ax.scatter(xs, ys)
    ax.set(xscale="log", xlim=(0.12, 220), ylim=(0, 100))
    fig.canvas.draw()
    texts = plots.place_labels(ax, xs, ys, labels)
    renderer = fig.canvas.get_renderer()
    boxes = [plots.text_box(t, renderer) for t in texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    leaders = [plots._leader(tuple(ax.transData.transform(t.xy)), b)
               for t, b in zip(texts, boxes) if t.arrow_patch is not None]  # fmt: skip
    crossings = sum(plots._crosses(*a, *b) for i, a in enumerate(leaders) for b in leaders[i + 1 :])
    assert len(leaders) >= 20 and crossings <= 3  # placed without regard to the lines: 27 crossings
    plt.close(fig)
