"""The timm and torchvision bridges: every model of both libraries through zoo's registry.

Reference figures (parameter counts, names, outputs) are computed from timm and torchvision in the test.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import timm
import torch
import torchvision.models as tvm
from safetensors.torch import save_file

import zoo
from zoo import registry

# A CNN and a ViT from each source, with the keywords that make them cheap, and the source's own builder.
SAMPLE = {
    "timm/resnet18": ({}, lambda **kw: timm.create_model("resnet18", pretrained=False, **kw)),
    "timm/vit_tiny_patch16_224": (
        {"img_size": 32},
        lambda **kw: timm.create_model("vit_tiny_patch16_224", pretrained=False, **kw),
    ),
    "torchvision/mobilenet_v3_small": ({}, lambda **kw: tvm.get_model("mobilenet_v3_small", weights=None, **kw)),
    "torchvision/vit_b_32": (
        {"img_size": 32},
        lambda **kw: tvm.get_model(
            "vit_b_32", weights=None, **{("image_size" if k == "img_size" else k): v for k, v in kw.items()}
        ),
    ),
}


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _on_meta(build, **kwargs) -> torch.nn.Module:
    with torch.device("meta"):
        return build(**kwargs)


# ---------------------------------------------------------------------------------------------------------
# Laziness and listing
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_registering_and_lenet_import_neither_library():
    code = textwrap.dedent(
        """
        import sys
        import zoo.bridges.timm, zoo.bridges.torchvision
        assert "timm" not in sys.modules and "torchvision" not in sys.modules, "a bridge module imported its library"
        import zoo
        zoo.create("lenet5")
        zoo.list_models()
        assert "lenet5" in zoo.list_models() and zoo.list_sources() == ["timm", "torchvision"]
        assert "timm" not in sys.modules, "zoo.create('lenet5') or zoo.list_models() imported timm"
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_listing_matches_the_sources_and_builds_nothing(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("listing built a model")

    monkeypatch.setattr(timm, "create_model", refuse)
    monkeypatch.setattr(tvm, "get_model", refuse)
    assert zoo.list_models("timm/*resnet*") == sorted(f"timm/{n}" for n in timm.list_models("*resnet*"))
    tv_names = sorted(f"torchvision/{n}" for n in tvm.list_models(module=tvm))
    assert zoo.list_models(source="torchvision") == tv_names
    assert len(tv_names) == len(tvm.list_models(module=tvm)) and "torchvision/fasterrcnn_resnet50_fpn" not in tv_names
    everything = zoo.list_models(source="all")
    assert {"lenet5", "timm/resnet18", "torchvision/resnet18"} <= set(everything)
    assert len(everything) == len(zoo.list_models()) + len(timm.list_models()) + len(tv_names)
    assert zoo.list_models("resnet18", source="timm") == ["timm/resnet18"]
    assert not any("/" in n for n in zoo.list_models())  # the default listing leaves the sources alone


def test_unknown_bridged_name_suggests():
    with pytest.raises(zoo.UnknownModelError, match="did you mean 'timm/resnet18'"):
        zoo.create("timm/resnet181")
    with pytest.raises(zoo.UnknownModelError, match="torchvision/mobilenet_v3_small"):
        zoo.info("torchvision/mobilenet_v3_smal")
    with pytest.raises(zoo.UnknownModelError):  # a pretrained tag timm does not have
        zoo.info("timm/resnet18.no_such_tag")


# ---------------------------------------------------------------------------------------------------------
# Building: the sample, counts, cards
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SAMPLE))
def test_sample_builds_and_runs_with_10_classes(name):
    extra, source = SAMPLE[name]
    model = zoo.create(name, num_classes=10, **extra)
    size = extra.get("img_size", 32)
    out = model.eval()(torch.randn(2, 3, size, size))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert _n_params(model) == _n_params(_on_meta(source, num_classes=10, **extra))
    assert set(model.state_dict()) == set(_on_meta(source, num_classes=10, **extra).state_dict())


@pytest.mark.parametrize("name", list(SAMPLE))
def test_card_counts_parameters_like_the_source(name):
    _, source = SAMPLE[name]
    card = zoo.info(name)
    assert card.num_params == _n_params(_on_meta(source))
    assert card.num_classes == 1000 and card.input_size == (3, 224, 224)
    assert card.family and card.plugin == f"zoo.bridges.{name.split('/')[0]}"


def test_timm_card_from_pretrained_cfg():
    card = zoo.info("timm/resnet18")
    cfg = timm.models.get_pretrained_cfg("resnet18")
    assert card.family == "resnet"
    assert set(card.tags) == {n.split(".", 1)[1] for n in timm.list_pretrained("resnet18.*")}
    assert card.paper == (cfg.paper_name or cfg.paper_ids)
    assert zoo.info("timm/resnet18.a3_in1k").input_size == timm.models.get_pretrained_cfg("resnet18.a3_in1k").input_size


def test_torchvision_card_from_weights_meta():
    card = zoo.info("torchvision/resnet18")
    weights = tvm.get_model_weights("resnet18")
    assert card.family == "resnet" and card.paper == "Deep Residual Learning for Image Recognition"
    assert card.year == 2015 and card.tags == tuple(w.name for w in weights)
    assert registry.get_spec("torchvision/resnet18").num_params == weights.DEFAULT.meta["num_params"]


# ---------------------------------------------------------------------------------------------------------
# The uniform keywords
# ---------------------------------------------------------------------------------------------------------


def test_torchvision_in_chans_adapts_the_first_conv():
    torch.manual_seed(0)
    rgb = zoo.create("torchvision/mobilenet_v3_small", num_classes=10).eval()
    torch.manual_seed(0)
    grey = zoo.create("torchvision/mobilenet_v3_small", num_classes=10, in_chans=1).eval()
    assert grey.features[0][0].in_channels == 1 and set(grey.state_dict()) == set(rgb.state_dict())
    x = torch.rand(2, 1, 32, 32)
    # the summed kernel sees a grey image as the RGB model sees its three-channel copy
    torch.testing.assert_close(grey(x), rgb(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)
    five = zoo.create("torchvision/resnet18", num_classes=10, in_chans=5)
    assert five(torch.randn(2, 5, 32, 32)).shape == (2, 10)


def test_drop_rate_and_img_size_mapping():
    tv = zoo.create("torchvision/mobilenet_v3_small", drop_rate=0.3)
    assert [m.p for m in tv.modules() if isinstance(m, torch.nn.Dropout)] == [0.3]
    assert zoo.create("timm/resnet18", drop_rate=0.25).drop_rate == 0.25
    zoo.create("torchvision/resnet18", drop_rate=0.0)  # no dropout there: 0 is exactly right
    with pytest.raises(ValueError, match="no dropout"):
        zoo.create("torchvision/resnet18", drop_rate=0.1)
    with pytest.raises(ValueError, match="multiple of its patch size 32"):
        zoo.create("torchvision/vit_b_32", img_size=40)
    with pytest.raises(ValueError, match="does not run at img_size=16"):
        zoo.create("torchvision/squeezenet1_1", img_size=16)  # torchvision documents a 17-px minimum
    assert zoo.create("torchvision/squeezenet1_1", img_size=24)(torch.randn(1, 3, 24, 24)).shape == (1, 1000)


def test_pretrained_is_refused_and_nothing_downloads():
    with pytest.raises(TypeError, match="weights="):
        zoo.create("timm/resnet18", pretrained=True)


# ---------------------------------------------------------------------------------------------------------
# weights=: the source's own state dicts load as they are
# ---------------------------------------------------------------------------------------------------------


def test_timm_weights_from_a_safetensors_file(tmp_path):
    source = timm.create_model("resnet18", pretrained=False, num_classes=10).eval()
    path = tmp_path / "resnet18.safetensors"
    save_file(source.state_dict(), str(path))
    model = zoo.create("timm/resnet18", num_classes=10, weights=path).eval()
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(model(x), source(x))


def test_torchvision_weights_from_a_torch_save_file(tmp_path):
    source = tvm.get_model("mobilenet_v3_small", weights=None, num_classes=10).eval()
    path = tmp_path / "mobilenet_v3_small.pth"
    torch.save(source.state_dict(), path)
    model = zoo.create("torchvision/mobilenet_v3_small", num_classes=10, weights=str(path)).eval()
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(model(x), source(x))


# ---------------------------------------------------------------------------------------------------------
# With the rest of zoo
# ---------------------------------------------------------------------------------------------------------


def test_compare_runs_across_sources():
    if not hasattr(zoo, "compare") and "compare" not in getattr(zoo, "__all__", ()):
        pytest.skip("zoo.compare is not available yet")
    try:
        compare = zoo.compare
    except (AttributeError, ImportError) as exc:
        pytest.skip(f"zoo.compare is not available yet ({exc})")
    names = ["lenet5", "timm/resnet18", "torchvision/mobilenet_v3_small"]
    data = zoo.load_dataset("synthetic", img_size=16, train_size=32, test_size=16)  # small enough for a test
    results = compare(names, dataset=data, epochs=1, latency_runs=0, throughput_batch=8, progress=False)
    rows = {r["model"]: r for r in results.rows}
    assert set(rows) == set(names)
    assert all(r["error"] is None for r in rows.values()), {n: r["error"] for n, r in rows.items()}
