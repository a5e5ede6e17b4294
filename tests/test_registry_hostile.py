"""The registry under hostile input: bad builder keywords, unreadable weights, malicious checkpoint configs and
plugins that try to take the host down. Every case must end in one line naming what was wrong."""

from __future__ import annotations

import json
import math
import os
import signal
import time
import types
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.nn.modules.module import register_module_parameter_registration_hook

import zoo
from zoo import plugin_manager
from zoo.containment import PluginError
from zoo.plugin_manager import ModelOptionError, ZooPluginWarning
from zoo.testing import check_architecture
from zoo.weights import CheckpointError


@pytest.fixture
def reg(fresh_registry):
    return fresh_registry


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, repr(text)
    return text


def tiny(*, num_classes=10, in_chans=1, img_size=8, drop_rate=0.0, **extra):
    """A tiny linear classifier for hostile-input tests (takes any other keyword)."""
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    return nn.Sequential(nn.Flatten(), nn.Dropout(drop_rate), nn.Linear(in_chans * h * w, num_classes))


def plugin_with(name: str, builder=tiny, models=("hostile_net",), hook=None, **metadata):
    """A plugin module registering ``models`` with ``builder``; ``hook`` replaces the hook's body."""
    mod = types.ModuleType(name)

    @zoo.hookimpl
    def register_models(register):
        if hook is not None:
            hook()
        for m in models:
            register(m, builder, family="tiny", paper="-", year=2024, input_size=(1, 8, 8), num_classes=10, **metadata)

    mod.register_models = register_models
    return mod


# ---------------------------------------------------------------------------------------------------------
# 1. Uniform builder keywords are validated at the door
# ---------------------------------------------------------------------------------------------------------

BAD_KEYWORDS = [
    ("num_classes", -1),
    ("num_classes", True),
    ("num_classes", 2.0),
    ("num_classes", "10"),
    ("num_classes", [10]),
    ("in_chans", 0),
    ("in_chans", -3),
    ("in_chans", False),
    ("in_chans", 1.5),
    ("drop_rate", -0.5),
    ("drop_rate", 1.0),
    ("drop_rate", 1.5),
    ("drop_rate", math.nan),
    ("drop_rate", math.inf),
    ("drop_rate", "0.1"),
    ("drop_rate", True),
    ("img_size", "32"),
    ("img_size", 0),
    ("img_size", -32),
    ("img_size", 32.0),
    ("img_size", True),
    ("img_size", (32,)),
    ("img_size", (32, 0)),
    ("img_size", (32, 32, 32)),
    ("img_size", (True, 32)),
    ("img_size", [32, "32"]),
    ("img_size", {"h": 32}),
]


@pytest.mark.parametrize(("key", "value"), BAD_KEYWORDS, ids=[f"{k}={v!r}" for k, v in BAD_KEYWORDS])
def test_bad_uniform_keyword_is_one_line_naming_it(reg, key, value):
    with pytest.raises(ModelOptionError) as err:
        zoo.create("lenet5", **{key: value})
    text = one_line(err.value)
    assert text.startswith("lenet5: ") and key in text and repr(value) in text and "accepted" in text
    assert isinstance(err.value, ValueError) and isinstance(err.value, TypeError)  # either except clause catches it


def test_the_issue_examples(reg):
    for kw, accepted in [
        ({"num_classes": -1}, "an int >= 1"),
        ({"in_chans": 0}, "an int >= 1"),
        ({"drop_rate": -0.5}, "a float in [0, 1)"),
        ({"img_size": "32"}, "an int >= 1 or a pair"),
    ]:
        with pytest.raises(ModelOptionError, match=f"accepted: {accepted}".replace("[", r"\[").replace(")", r"\)")):
            zoo.create("lenet5", **kw)


def test_good_uniform_keywords_still_build_and_are_recorded_plainly(reg):
    model = zoo.create("lenet5", num_classes=np.int64(3), in_chans=np.int32(1), drop_rate=np.float32(0.25))
    assert model.zoo_config["kwargs"] == {"num_classes": 3, "in_chans": 1, "drop_rate": 0.25}
    assert all(type(v) in (int, float) for v in model.zoo_config["kwargs"].values())
    model = zoo.create("lenet5", img_size=[28, 40], drop_rate=0)
    assert model.zoo_config["kwargs"]["img_size"] == (28, 40)
    assert model(torch.randn(1, 1, 28, 40)).shape == (1, 10)
    # num_classes=0 is timm's "no classifier": the families return the pooled features
    assert zoo.create("mlp", num_classes=0, hidden_sizes=(6,))(torch.randn(1, 1, 28, 28)).shape == (1, 6)
    # None keeps the builder's default (the bridges' documented meaning) and is not recorded
    model = zoo.create("lenet5", num_classes=None, img_size=None)
    assert model.zoo_config["kwargs"] == {} and model(torch.randn(1, 1, 32, 32)).shape == (1, 10)


def test_plugin_models_are_checked_before_their_builder_runs(reg):
    calls = []

    def counting(*, num_classes=10, in_chans=1, img_size=8, drop_rate=0.0):
        """Counts its calls."""
        calls.append(1)
        return tiny(num_classes=num_classes, in_chans=in_chans, img_size=img_size, drop_rate=drop_rate)

    plugin_manager.register_plugin(plugin_with("kw_plugin", counting))
    for key, value in [("num_classes", -1), ("in_chans", 0), ("drop_rate", -0.5), ("img_size", "8")]:
        with pytest.raises(ModelOptionError, match=f"hostile_net: bad {key}="):
            zoo.create("hostile_net", **{key: value})
    assert calls == []
    zoo.create("hostile_net", num_classes=2)
    assert calls == [1]


def test_a_builder_called_directly_says_what_img_size_accepts():
    from zoo.models.lenet import lenet5

    with pytest.raises(TypeError, match=r"lenet5: img_size must be an int or a pair of ints \(H, W\); got '32'"):
        lenet5(img_size="32")
    with pytest.raises(ValueError, match="lenet5 needs img_size >= 16 \\(got 8\\)"):
        lenet5(img_size=8)


# ---------------------------------------------------------------------------------------------------------
# 2. weights= files that are not weights
# ---------------------------------------------------------------------------------------------------------


class Payload:
    """Pickles to a call of os.system: the classic malicious checkpoint."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _bad_weight_files(tmp_path):
    lenet = zoo.create("lenet5")
    good = tmp_path / "good.pt"
    torch.save(lenet.state_dict(), good)
    raw = good.read_bytes()
    from safetensors.torch import save_file

    save_file(lenet.state_dict(), str(tmp_path / "good.safetensors"))
    st_raw = (tmp_path / "good.safetensors").read_bytes()
    files = {
        "empty.pt": b"",
        "empty.safetensors": b"",
        "empty": b"",
        "trunc.pt": raw[: len(raw) // 2],
        "trunc.safetensors": st_raw[: len(st_raw) // 2],
        "garbage.pt": os.urandom(300),
        "garbage.safetensors": b"\xff" * 100,
        "text.pt": b"not a checkpoint\n",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    torch.save({"a": 1, "b": "x"}, tmp_path / "numbers.pt")
    torch.save({1: torch.zeros(1)}, tmp_path / "intkeys.pt")
    torch.save({"format": "zoo.checkpoint", "model": [1, 2]}, tmp_path / "badmodel.pt")
    torch.save({"format": "zoo.checkpoint", "version": 1}, tmp_path / "nomodel.pt")
    torch.save({"fc.weight": Payload(tmp_path / "PWNED")}, tmp_path / "evil.pt")
    import pickle

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Payload(tmp_path / "PWNED")))
    (tmp_path / "adir.pt").mkdir()
    os.mkfifo(tmp_path / "fifo.pt")  # opening it would block forever
    return sorted(p for p in tmp_path.iterdir() if not p.name.startswith("good"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch, on the raw pickle
def test_unreadable_weights_are_one_line_naming_the_file(reg, tmp_path):
    files = _bad_weight_files(tmp_path)
    assert len(files) == 18
    for path in files:
        with pytest.raises(CheckpointError) as err:
            zoo.create("lenet5", weights=path)
        assert str(path) in one_line(err.value), path
    assert not (tmp_path / "PWNED").exists()
    for name in ("evil.pt", "evil.pkl", "garbage.pt", "text.pt"):  # never torch's advice to load unsafely
        with pytest.raises(CheckpointError) as err:
            zoo.create("lenet5", weights=tmp_path / name)
        assert "weights_only" not in str(err.value) and "trust" not in str(err.value)
    with pytest.raises(CheckpointError, match="is not a regular file"):
        zoo.create("lenet5", weights="/dev/zero")  # would read forever
    # a training checkpoint's layout (Lightning's) whose weights are another model's: read, then refused as a misfit
    # (a Lightning checkpoint of the model itself loads: tests/test_foreign.py)
    torch.save({"state_dict": {"other.weight": torch.zeros(2)}, "epoch": 3}, tmp_path / "nested.pt")
    with pytest.raises(ValueError, match="do not fit 'lenet5'"):
        zoo.create("lenet5", weights=tmp_path / "nested.pt")


def test_weights_are_read_before_the_model_is_built(reg, tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    built = []
    plugin_manager.register_plugin(plugin_with("wplug", lambda **kw: built.append(1) or tiny(**kw)))
    with pytest.raises(CheckpointError):
        zoo.create("hostile_net", weights=tmp_path / "empty.pt")
    assert built == []


def test_in_memory_weights_that_are_not_a_state_dict(reg):
    for weights, message in [
        ({"fc.weight": [1.0]}, r"'fc.weight' is not a tensor \(list\)"),
        ({3: torch.zeros(1)}, "key 3 is not a string"),
    ]:
        with pytest.raises(ValueError, match=message) as err:
            zoo.create("lenet5", weights=weights)
        one_line(err.value)
    wrong = zoo.create("lenet5", num_classes=5).state_dict()
    with pytest.raises(ValueError, match="weights do not fit 'lenet5': size mismatch for fc3.weight") as err:
        zoo.create("lenet5", weights=wrong)
    one_line(err.value)


def test_a_plugins_convert_weights_failing_is_one_line(reg):
    def convert(state):
        raise KeyError("features.0.weight")

    plugin_manager.register_plugin(plugin_with("conv_plugin", convert_weights=convert))
    with pytest.raises(ValueError, match="convert_weights of plugin 'conv_plugin' failed: KeyError") as err:
        zoo.create("hostile_net", weights={"x": torch.zeros(1)})
    one_line(err.value)


def test_a_deflate_bomb_checkpoint_is_refused(reg, tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(20_000_000, dtype=torch.uint8)}, plain)
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, zin.read(item.filename))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(CheckpointError, match="inflate") as err:
        zoo.create("lenet5", weights=bomb)
    assert str(bomb) in one_line(err.value)
    with pytest.raises(CheckpointError, match="inflate"):
        zoo.load(bomb, model=nn.Linear(1, 1))


# ---------------------------------------------------------------------------------------------------------
# 3. Checkpoint configs are bounded
# ---------------------------------------------------------------------------------------------------------


def _ckpt(tmp_path, config, state=None, name="c.pt"):
    state = zoo.create("lenet5").state_dict() if state is None else state
    path = tmp_path / name
    torch.save({"format": "zoo.checkpoint", "version": 1, "model": state, "model_config": config}, path)
    return path


MALFORMED_CONFIGS = [
    ("lenet5", "zoo_config is of type str"),
    (["lenet5"], "zoo_config is of type list"),
    (42, "zoo_config is of type int"),
    ({"name": 5}, "its model name is of type int"),
    ({"name": ["lenet5"]}, "its model name is of type list"),
    ({"name": None}, "its model name is of type NoneType"),
    ({"name": "lenet5", "kwargs": [1, 2]}, "its kwargs are of type list"),
    ({"name": "lenet5", "kwargs": "num_classes=3"}, "its kwargs are of type str"),
    ({"name": "lenet5", "kwargs": {1: 2}}, "keyword 1 is not a string"),
    ({"name": "lenet5", "kwargs": {"num_classes": torch.tensor(10)}}, "'num_classes' holds a value of type Tensor"),
    ({"name": "lenet5", "kwargs": {"num_classes": -3}}, "num_classes=-3"),
    ({"name": "lenet5", "kwargs": {"num_clases": 3}}, "did you mean 'num_classes'"),
    ({"name": "lenet6"}, "did you mean 'lenet5'"),
    ({"name": "lenet5", "kwargs": {"weights": "/etc/passwd"}}, "names a file"),
    ({"name": "lenet5", "kwargs": {"pretrained": True}}, "names a file"),
    ({"name": "lenet5", "kwargs": {"checkpoint_path": "other.pt"}}, "names a file"),
    ({"name": "lenet5", "kwargs": {"pretrained_cfg_overlay": {"file": "/x.bin"}}}, "names a file"),
    ({"name": "lenet5", "kwargs": {"cfg": {"deep": {"file": "/x.bin"}}}}, "names a file"),
]


@pytest.mark.parametrize(("config", "message"), MALFORMED_CONFIGS, ids=[repr(c)[:40] for c, _ in MALFORMED_CONFIGS])
def test_malformed_config_is_one_line(reg, tmp_path, config, message):
    path = _ckpt(tmp_path, config)
    with pytest.raises(CheckpointError) as err:
        zoo.load(path)
    text = one_line(err.value)
    assert str(path) in text and message in text, text


def test_a_config_never_reads_a_second_file(reg, tmp_path):
    other = tmp_path / "other.pt"
    torch.save(zoo.create("lenet5").state_dict(), other)
    seen = []
    plugin_manager.register_plugin(plugin_with("pathy", lambda **kw: seen.append(kw) or tiny()))
    for kwargs in ({"weights": str(other)}, {"root_dir": str(tmp_path)}, {"data_file": str(other)}, {"url": "x"}):
        path = _ckpt(tmp_path, {"name": "hostile_net", "kwargs": kwargs}, tiny().state_dict())
        with pytest.raises(CheckpointError, match="names a file"):
            zoo.load(path)
    assert seen == []
    # flags named like files are fine: they hold no path
    path = _ckpt(tmp_path, {"name": "hostile_net", "kwargs": {"init_weights": True}}, tiny().state_dict())
    zoo.load(path)
    assert seen and all(kw == {"init_weights": True} for kw in seen)  # counted on the meta device, then built


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hidden_sizes": [200_000, 200_000]},  # 40 billion parameters: 160 GB
        {"in_features": 10**9},  # 512 billion
        {"hidden_sizes": [4] * 200_000},  # few parameters, but 200,000 layers
    ],
)
def test_a_tiny_checkpoint_cannot_ask_for_a_huge_model(reg, tmp_path, kwargs):
    state = zoo.create("mlp", hidden_sizes=(4,)).state_dict()
    path = _ckpt(tmp_path, {"name": "mlp", "kwargs": kwargs}, state)
    assert path.stat().st_size < 2_000_000
    registered = []  # (device, numel) of every parameter a module registers while the file is read
    hook = register_module_parameter_registration_hook(lambda m, n, p: registered.append((p.device.type, p.numel())))
    try:
        with pytest.raises(CheckpointError, match="than the file holds") as err:
            zoo.load(path)
    finally:
        hook.remove()
    assert str(path) in one_line(err.value)
    # refused before allocating: nothing real was built, and the meta-device count stopped early
    assert registered and sum(numel for device, numel in registered if device != "meta") == 0
    assert len(registered) < 10_000


def test_a_config_that_builds_a_bigger_model_than_its_weights_is_refused(reg, tmp_path):
    state = zoo.create("lenet5").state_dict()
    path = _ckpt(tmp_path, {"name": "lenet5", "kwargs": {"num_classes": 1000}}, state)
    with pytest.raises(CheckpointError, match=r"builds [\d,]+ parameters in \d+ tensors, more than the file holds"):
        zoo.load(path)


def test_safetensors_metadata_that_is_not_a_config(reg, tmp_path):
    from safetensors.torch import save_file

    state = zoo.create("lenet5").state_dict()
    for i, meta in enumerate(["{", "[1, 2]", "[" * 100_000, json.dumps({"name": "lenet5", "kwargs": 3}), "null"]):
        path = tmp_path / f"m{i}.safetensors"
        save_file(state, str(path), metadata={"format": "zoo.checkpoint", "zoo_config": meta})
        with pytest.raises(CheckpointError) as err:
            zoo.load(path)
        assert str(path) in one_line(err.value)
        # with a model given, a broken record only loses the data record; the weights still load
        model = zoo.load(path, model=zoo.create("lenet5"))
        assert isinstance(model, nn.Module)


def test_good_checkpoints_still_round_trip(reg, tmp_path):
    model = zoo.create("mlp", hidden_sizes=(6, 5), num_classes=3, img_size=(4, 5))
    for suffix in (".pt", ".safetensors"):
        path = zoo.save(model, tmp_path / f"m{suffix}")
        back = zoo.load(path)
        assert back.zoo_config["kwargs"]["img_size"] == (4, 5)
        assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), model.state_dict().values()))


# ---------------------------------------------------------------------------------------------------------
# 4. Plugins cannot kill the host
# ---------------------------------------------------------------------------------------------------------


class PluginDeath(BaseException):
    """A BaseException that is neither SystemExit nor KeyboardInterrupt."""


def _raiser(exc):
    def hook():
        raise exc

    return hook


DEADLY = [SystemExit(3), SystemExit("bye"), KeyboardInterrupt(), GeneratorExit(), PluginDeath("boom")]


@pytest.mark.parametrize("exc", DEADLY, ids=lambda e: type(e).__name__)
def test_a_hook_raising_a_base_exception_is_a_failed_row(reg, exc):
    with pytest.warns(
        ZooPluginWarning, match=f"zoo plugin 'deadly' failed: register_models raised {type(exc).__name__}"
    ):
        info = plugin_manager.register_plugin(plugin_with("deadly", hook=_raiser(exc)))
    assert info.status == "failed" and type(exc).__name__ in info.errors[0]
    assert "lenet5" in zoo.list_models() and "hostile_net" not in zoo.list_models()


def test_a_plugin_failing_on_import_or_attribute_access_is_contained(reg, monkeypatch):
    class FakeEntryPoint:
        name, dist = "exits_on_import", None

        def load(self):
            raise SystemExit(1)

    class Hostile:
        def __dir__(self):
            return ["register_models"]

        def __getattr__(self, name):
            raise KeyboardInterrupt

    monkeypatch.setattr(plugin_manager, "_entry_points", lambda: [FakeEntryPoint()])
    plugin_manager.reset()
    with pytest.warns(ZooPluginWarning, match="'exits_on_import' failed: SystemExit"):
        rows = {p.name: p for p in zoo.plugins()}
    assert rows["exits_on_import"].status == "failed" and rows["zoo.models.lenet"].status == "ok"
    with pytest.warns(ZooPluginWarning, match="'hostile' failed: KeyboardInterrupt"):
        assert plugin_manager.register_plugin(Hostile(), name="hostile").status == "failed"


def test_an_exception_whose_message_cannot_be_printed(reg):
    class Unprintable(Exception):
        def __str__(self):
            raise SystemExit("str() of this exception exits")

    with pytest.warns(ZooPluginWarning, match="'unprintable' failed: register_models raised Unprintable"):
        info = plugin_manager.register_plugin(plugin_with("unprintable", hook=_raiser(Unprintable())))
    assert info.status == "failed"


def test_the_plugins_command_shows_the_failed_row(reg, capsys):
    from zoo import cli

    with pytest.warns(ZooPluginWarning):
        plugin_manager.register_plugin(plugin_with("exiter", hook=_raiser(SystemExit(2))))
    assert cli.main(["plugins"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("exiter"))
    assert "failed" in row and "SystemExit" in row


@pytest.mark.parametrize("exc", DEADLY, ids=lambda e: type(e).__name__)
def test_a_builder_raising_a_base_exception_is_a_plugin_error(reg, exc):
    def builder(*, num_classes=10, in_chans=1, img_size=8, drop_rate=0.0):
        """Dies."""
        raise exc

    plugin_manager.register_plugin(plugin_with("bad_builder", builder))
    with pytest.raises(
        PluginError, match=f"hostile_net \\(plugin 'bad_builder'\\): .*raised {type(exc).__name__}"
    ) as e:
        zoo.create("hostile_net")
    one_line(e.value)
    assert zoo.info("hostile_net").num_params is None  # count_params contains it too
    assert zoo.create("lenet5") is not None


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler (a test runner's worker may ignore SIGINT), put back afterwards."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_real_ctrl_c_inside_a_builder_is_still_an_interrupt(reg, default_sigint):
    def builder(*, num_classes=10, in_chans=1, img_size=8, drop_rate=0.0):
        """The user presses Ctrl-C while this runs."""
        signal.raise_signal(signal.SIGINT)
        time.sleep(5)  # the interrupt lands here
        return tiny()

    plugin_manager.register_plugin(plugin_with("slow_plugin", builder))
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt) as err:
        zoo.create("hostile_net")
    assert any("slow_plugin" in note for note in getattr(err.value, "__notes__", []))
    assert signal.getsignal(signal.SIGINT) is handler  # put back


def test_a_real_ctrl_c_during_discovery_leaves_a_clean_registry(reg, default_sigint):
    def press_ctrl_c():
        signal.raise_signal(signal.SIGINT)
        time.sleep(5)

    with pytest.raises(KeyboardInterrupt):
        plugin_manager.register_plugin(plugin_with("interrupted", hook=press_ctrl_c))
    assert all(p.name != "interrupted" for p in zoo.plugins())
    with pytest.warns(ZooPluginWarning, match="KeyboardInterrupt"):  # the same plugin, now raising it by itself
        info = plugin_manager.register_plugin(plugin_with("interrupted", hook=_raiser(KeyboardInterrupt())))
    assert info.status == "failed"


def test_a_source_raising_a_base_exception_is_a_plugin_error(reg):
    mod = types.ModuleType("bad_source")

    def get_model(name):
        raise SystemExit(4)

    @zoo.hookimpl
    def register_model_sources(register):
        register("badsrc", lambda: ["a"], get_model)

    mod.register_model_sources = register_model_sources
    plugin_manager.register_plugin(mod)
    with pytest.raises(PluginError, match="plugin 'bad_source'.*raised SystemExit") as err:
        zoo.create("badsrc/a")
    one_line(err.value)


# ---------------------------------------------------------------------------------------------------------
# 5. Models returning tuples or dicts
# ---------------------------------------------------------------------------------------------------------


class AuxNet(nn.Module):
    def __init__(self, num_classes=10, in_chans=1, img_size=8, drop_rate=0.0, as_dict=False):
        super().__init__()
        self.as_dict = as_dict
        self.body = tiny(num_classes=num_classes, in_chans=in_chans, img_size=img_size, drop_rate=drop_rate)
        self.aux = tiny(num_classes=num_classes, in_chans=in_chans, img_size=img_size)

    def forward(self, x):
        logits = self.body(x)
        if not self.training:
            return logits
        aux = self.aux(x)
        return {"logits": logits, "aux": aux} if self.as_dict else (logits, aux)


@pytest.mark.parametrize("as_dict", [False, True])
def test_check_architecture_takes_the_logits_of_tuple_and_dict_outputs(reg, as_dict):
    def aux_net(*, num_classes=10, in_chans=1, img_size=8, drop_rate=0.0):
        """A model with an auxiliary head in training mode (a test)."""
        return AuxNet(num_classes, in_chans, img_size, drop_rate, as_dict=as_dict)

    plugin_manager.register_plugin(plugin_with("aux_plugin", aux_net, models=("aux_net",)))
    report = check_architecture("aux_net", check_img_size=False)
    assert "honours num_classes" in report.passed
