"""The registry: lookup, creation, metadata, and every way a plugin can be wrong."""

from __future__ import annotations

import types
import warnings

import pytest
import torch
import torch.nn as nn

import zoo
from zoo import plugin_manager, registry
from zoo.plugin_manager import UnknownModelError, ZooPluginWarning
from zoo.weights import CheckpointError


def tiny(*, num_classes=10, in_chans=1, img_size=8, drop_rate=0.0):
    """A tiny linear classifier for registry tests."""
    return nn.Sequential(nn.Flatten(), nn.Dropout(drop_rate), nn.Linear(in_chans * img_size * img_size, num_classes))


def make_plugin(name, models=(), datasets=()):
    """A plugin module registering ``models`` (names) with the tiny builder."""
    mod = types.ModuleType(name)

    @zoo.hookimpl
    def register_models(register):
        for m in models:
            register(m, tiny, family="tiny", paper="A test", year=2024, input_size=(1, 8, 8), num_classes=10)

    mod.register_models = register_models
    return mod


@pytest.fixture
def reg(fresh_registry):
    return fresh_registry


# --- lookup and creation -----------------------------------------------------------------------------------


def test_unknown_model_suggests_the_closest_name(reg):
    with pytest.raises(UnknownModelError, match="did you mean 'lenet5'") as exc:
        zoo.create("lenet")
    assert isinstance(exc.value, KeyError)
    assert "\n" not in str(exc.value)


def test_unknown_keyword_names_the_accepted_ones(reg):
    with pytest.raises(TypeError, match="unexpected keyword 'num_class'.*num_classes.*did you mean 'num_classes'"):
        zoo.create("lenet5", num_class=3)


@pytest.mark.parametrize("name", ["densenet121", "mobilenet_v2", "efficientnet_b0", "vit_tiny_patch16", "lenet5"])
def test_every_family_refuses_a_misspelt_keyword_before_building(reg, name):
    """Multi-variant builders take **kwargs; the keywords they declare make create() check them all the same (the
    registry's wording, not the model class's 'got an unexpected keyword argument')."""
    with pytest.raises(TypeError, match=rf"^{name}: unexpected keyword 'drop_rat'; .*did you mean 'drop_rate'\?$"):
        zoo.create(name, drop_rat=0.1)


def test_declared_keywords_are_checked_at_registration(reg):
    def loose(**kwargs):
        return tiny(**kwargs)

    calls = []

    def counted(**kwargs):
        calls.append(kwargs)
        return tiny(**kwargs)

    good = dict(family="tiny", input_size=(1, 8, 8), num_classes=10)
    with pytest.raises(ValueError, match="must accept the keywords num_classes, in_chans, img_size; missing img_size"):
        zoo.register_model("loose_a", keywords=("num_classes", "in_chans", "drop_rate"), **good)(loose)
    with pytest.raises(ValueError, match="does not accept the declared keywords width"):
        zoo.register_model("tiny_b", keywords=("num_classes", "in_chans", "img_size", "width"), **good)(tiny)
    with pytest.raises(ValueError, match="keywords for 'loose_c' must be a list of keyword names"):
        zoo.register_model("loose_c", keywords="num_classes", **good)(loose)
    zoo.register_model("loose_d", keywords=("num_classes", "in_chans", "img_size", "drop_rate"), **good)(counted)
    assert "loose_a" not in zoo.list_models() and "tiny_b" not in zoo.list_models()
    with pytest.raises(TypeError, match="unexpected keyword 'in_chan'.*did you mean 'in_chans'"):
        zoo.create("loose_d", in_chan=1)
    assert calls == []  # refused before the builder ran
    assert zoo.create("loose_d", num_classes=3)(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


def test_pretrained_is_refused_with_a_way_out(reg):
    with pytest.raises(TypeError, match="weights=PATH"):
        zoo.create("lenet5", pretrained=True)


def test_create_records_how_the_model_was_made(reg):
    model = zoo.create("lenet5", num_classes=3, img_size=28)
    assert model.zoo_config == {"name": "lenet5", "kwargs": {"num_classes": 3, "img_size": 28}}
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 3)


def test_list_models_filters_and_sorts(reg):
    plugin_manager.register_plugin(make_plugin("p1", ["zeta_net", "alpha_net"]))
    names = zoo.list_models()
    assert names == sorted(names)
    assert {"lenet5", "zeta_net", "alpha_net"} <= set(names)
    assert zoo.list_models("*_NET") == ["alpha_net", "zeta_net"]
    assert zoo.list_models(family="tiny") == ["alpha_net", "zeta_net"]
    assert zoo.list_models(tag="classic") == [n for n in names if "classic" in registry.get_spec(n).tags]
    assert "lenet5" in zoo.list_models(tag="classic")
    with pytest.raises(ValueError, match="unknown source 'timmm'; accepted: zoo, all"):
        zoo.list_models(source="timmm")


def test_info_is_a_complete_card(reg):
    card = zoo.info("lenet5")
    assert (card.family, card.year, card.input_size, card.num_classes) == ("lenet", 1998, (1, 32, 32), 10)
    assert card.num_params == sum(p.numel() for p in zoo.create("lenet5").parameters())
    assert card.plugin == "zoo.models.lenet" and card.plugin_version == zoo.__version__
    assert "1x32x32" in str(card) and card.to_dict()["input_size"] == [1, 32, 32]


# --- weights -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_weights_from_a_file(reg, tmp_path, fmt):
    src = zoo.create("lenet5")
    path = tmp_path / f"w.{fmt}"
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(src.state_dict(), str(path))
    else:
        torch.save(src.state_dict(), path)
    model = zoo.create("lenet5", weights=path)
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(model.eval()(x), src.eval()(x))


def test_weights_that_do_not_fit_are_refused(reg):
    state = zoo.create("lenet5", num_classes=5).state_dict()
    with pytest.raises((ValueError, RuntimeError), match="size mismatch|do not fit"):
        zoo.create("lenet5", weights=state)
    with pytest.raises(ValueError, match="do not fit 'lenet5'.*missing"):
        zoo.create("lenet5", weights={"x": torch.zeros(1)})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        zoo.create("lenet5", weights="/nonexistent/w.pt")


def test_pickled_code_is_never_loaded(reg, tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"fc.weight": torch.zeros(1), "payload": types.SimpleNamespace(a=1)}, path)
    with pytest.raises(CheckpointError, match="holds a pickled types.SimpleNamespace.*pickled code never runs"):
        zoo.create("lenet5", weights=path)


# --- plugins: collisions and failures ------------------------------------------------------------------------


def test_collision_between_plugins_keeps_the_first_and_names_both(reg):
    plugin_manager.register_plugin(make_plugin("first", ["shared_name"]))
    with pytest.warns(
        ZooPluginWarning, match="'shared_name' from plugin 'second' is already registered by plugin 'first'"
    ):
        info = plugin_manager.register_plugin(make_plugin("second", ["shared_name", "own_name"]))
    assert registry.get_spec("shared_name").plugin == "first"
    assert registry.get_spec("own_name").plugin == "second"
    assert info.status == "partial" and "first" in info.errors[0]


def test_collision_with_a_builtin_keeps_the_builtin(reg):
    with pytest.warns(ZooPluginWarning, match="already registered by plugin 'zoo.models.lenet'"):
        plugin_manager.register_plugin(make_plugin("intruder", ["lenet5"]))
    assert registry.get_spec("lenet5").plugin == "zoo.models.lenet"


def test_register_model_decorator_and_override(reg):
    @zoo.register_model("notebook_net", family="tiny", paper="-", year=2024, input_size=(1, 8, 8), num_classes=10)
    def notebook_net(*, num_classes=10, in_chans=1, img_size=8, drop_rate=0.0):
        """A model defined in a notebook."""
        return tiny(num_classes=num_classes, in_chans=in_chans, img_size=img_size)

    assert zoo.create("notebook_net")(torch.randn(1, 1, 8, 8)).shape == (1, 10)
    with pytest.raises(
        ValueError, match="'lenet5' from plugin '.*' is already registered by plugin 'zoo.models.lenet'"
    ):
        zoo.register_model("lenet5")(notebook_net)
    zoo.register_model("lenet5", override=True)(notebook_net)
    assert registry.get_spec("lenet5").builder is notebook_net


def test_plugin_that_raises_is_reported_and_the_rest_still_load(reg):
    class Broken:
        @zoo.hookimpl
        def register_models(self, register):
            raise RuntimeError("no GPU driver found")

    with pytest.warns(ZooPluginWarning, match="'broken'.*no GPU driver found"):
        info = plugin_manager.register_plugin(Broken(), name="broken")
    assert info.status == "failed" and "no GPU driver found" in info.errors[0]
    assert "lenet5" in zoo.list_models()
    assert any(p.name == "broken" and p.status == "failed" for p in zoo.plugins())


def test_hookimpl_with_a_wrong_signature_is_rejected_naming_the_plugin(reg):
    bad = types.ModuleType("bad_sig")

    @zoo.hookimpl
    def register_models(reg, extra):
        pass

    bad.register_models = register_models
    with pytest.warns(ZooPluginWarning, match="plugin 'bad_sig' failed.*register_models"):
        info = plugin_manager.register_plugin(bad)
    assert info.status == "failed"


def test_misspelt_hook_is_rejected(reg):
    bad = types.ModuleType("typo_plugin")

    @zoo.hookimpl
    def register_model(register):
        pass

    bad.register_model = register_model
    with pytest.warns(ZooPluginWarning, match="unknown hook 'register_model'.*did you mean 'register_models'"):
        plugin_manager.register_plugin(bad)


@pytest.mark.parametrize(
    ("builder", "metadata", "message"),
    [
        (42, {}, "builder for 'x_net' is not callable"),
        (lambda num_classes=10: None, {}, "must accept the keywords num_classes, in_chans, img_size; missing in_chans"),
        (tiny, {"papr": "typo"}, "unknown model metadata 'papr'"),
    ],
)
def test_bad_registrations_are_refused_naming_the_plugin(reg, builder, metadata, message):
    plug = types.ModuleType("sloppy")

    @zoo.hookimpl
    def register_models(register):
        register("x_net", builder, **metadata)
        register("y_net", tiny)

    plug.register_models = register_models
    with pytest.warns(ZooPluginWarning, match=f"zoo plugin 'sloppy': .*{message}"):
        info = plugin_manager.register_plugin(plug)
    assert "x_net" not in zoo.list_models() and "y_net" in zoo.list_models()
    assert info.status == "partial"


def test_builder_returning_something_else_is_caught(reg):
    zoo.register_model("not_a_module")(lambda num_classes=10, in_chans=1, img_size=8: "oops")
    with pytest.raises(TypeError, match="returned str, not nn.Module"):
        zoo.create("not_a_module")


def test_unregister_removes_everything(reg):
    plugin_manager.register_plugin(make_plugin("temp", ["temp_net"]))
    plugin_manager.unregister_plugin("temp")
    assert "temp_net" not in zoo.list_models()
    assert all(p.name != "temp" for p in zoo.plugins())


def test_plugins_lists_builtins_with_versions(reg):
    rows = {p.name: p for p in zoo.plugins()}
    assert rows["zoo.models.lenet"].models == ["lenet5"]
    assert rows["zoo.models.lenet"].version == zoo.__version__
    assert all(p.status == "ok" for p in rows.values()), [(p.name, p.errors) for p in rows.values() if p.errors]


def test_no_warning_on_a_clean_load(reg):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zoo.list_models()
