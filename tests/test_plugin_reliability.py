"""Plugins that use the registry while it loads, terminals that cannot show every character, a ZOO_LOAD_PLUGINS
naming nothing installed, builders that never return, dataset loaders that return something else."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
import warnings

import pytest
import torch.nn as nn

import zoo
from zoo import plugin_manager
from zoo.plugin_manager import ZooPluginWarning


@pytest.fixture
def reg(fresh_registry):
    return fresh_registry


def tiny(*, num_classes=10, in_chans=1, img_size=8, drop_rate=0.0):
    """A tiny linear classifier."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * img_size * img_size, num_classes))


CARD = {"family": "tiny", "paper": "-", "year": 2024, "input_size": (1, 8, 8), "num_classes": 10}


class FakeEntryPoint:
    """An installed plugin as ``importlib.metadata`` lists it; ``load`` runs ``on_load`` first (its import)."""

    dist = None

    def __init__(self, name: str, module: types.ModuleType, on_load=None) -> None:
        self.name, self.module, self.on_load = name, module, on_load

    def load(self):
        if self.on_load is not None:
            self.on_load()
        return self.module


def plugin_calling(name: str, during_hook) -> types.ModuleType:
    mod = types.ModuleType(name)

    @zoo.hookimpl
    def register_models(register):
        during_hook()
        register(f"{name}_net", tiny, **CARD)

    mod.register_models = register_models
    return mod


def run_cli(monkeypatch, capsys, *argv: str) -> tuple[int, str]:
    from zoo import cli

    code = cli.main(list(argv))
    return code, capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------
# Re-entrancy: plugin code using the registry while the plugins load
# ---------------------------------------------------------------------------------------------------------

REENTRANT_CALLS = {
    "list_models": lambda: zoo.list_models(),
    "create": lambda: zoo.create("lenet5"),
    "info": lambda: zoo.info("mlp"),
    "plugins": lambda: zoo.plugins(),
    "list_datasets": lambda: zoo.list_datasets(),
}


@pytest.mark.parametrize("call", sorted(REENTRANT_CALLS))
@pytest.mark.parametrize("when", ["hook", "import"])
def test_a_plugin_using_the_registry_while_it_loads_breaks_nothing(reg, monkeypatch, capsys, call, when):
    seen = {}

    def use_registry():
        seen["result"] = REENTRANT_CALLS[call]()

    mod = plugin_calling("reentrant", use_registry if when == "hook" else lambda: None)
    ep = FakeEntryPoint("reentrant", mod, on_load=use_registry if when == "import" else None)
    monkeypatch.setattr(plugin_manager, "_entry_points", lambda: [ep])
    plugin_manager.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ZooPluginWarning)  # no plugin fails, nothing is registered twice
        names = zoo.list_models()
        rows = {p.name: p for p in zoo.plugins()}
    assert "lenet5" in names and "reentrant_net" in names
    assert rows["reentrant"].status == "ok" and rows["zoo.models.lenet"].status == "ok"
    assert "result" in seen  # the plugin's own call returned
    if call == "list_models":  # what was loaded so far: the built-in families, not the plugin's own model yet
        assert "lenet5" in seen["result"] and "reentrant_net" not in seen["result"]
    assert isinstance(zoo.create("reentrant_net"), nn.Module) and isinstance(zoo.create("lenet5"), nn.Module)
    code, out = run_cli(monkeypatch, capsys, "list")
    assert code == 0 and "reentrant_net" in out
    code, out = run_cli(monkeypatch, capsys, "plugins")
    assert code == 0 and any(line.startswith("reentrant") and " ok" in line for line in out.splitlines())


def test_a_plugin_resetting_the_registry_while_it_loads_is_a_failed_row(reg, monkeypatch):
    mod = plugin_calling("resetter", plugin_manager.reset)
    monkeypatch.setattr(plugin_manager, "_entry_points", lambda: [FakeEntryPoint("resetter", mod)])
    plugin_manager.reset()
    with pytest.warns(ZooPluginWarning, match="'resetter' failed: register_models raised RuntimeError: .*reset"):
        rows = {p.name: p for p in zoo.plugins()}
    assert rows["resetter"].status == "failed" and "lenet5" in zoo.list_models()


def test_a_plugin_registering_another_plugin_while_it_loads(reg, monkeypatch):
    inner = plugin_calling("inner", lambda: None)
    outer = plugin_calling("outer", lambda: plugin_manager.register_plugin(inner, name="inner"))
    monkeypatch.setattr(plugin_manager, "_entry_points", lambda: [FakeEntryPoint("outer", outer)])
    plugin_manager.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ZooPluginWarning)
        assert {"inner_net", "outer_net", "lenet5"} <= set(zoo.list_models())
    assert {p.name: p.status for p in zoo.plugins()}.keys() >= {"inner", "outer"}


# ---------------------------------------------------------------------------------------------------------
# ZOO_LOAD_PLUGINS naming nothing installed
# ---------------------------------------------------------------------------------------------------------


def test_zoo_load_plugins_naming_no_installed_plugin_says_so(reg, monkeypatch):
    mod = plugin_calling("shapes", lambda: None)
    ep = FakeEntryPoint("shapes", mod)
    monkeypatch.setattr(plugin_manager.importlib_metadata, "entry_points", lambda group: [ep])
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "shapse")
    plugin_manager.reset()
    with pytest.warns(ZooPluginWarning) as caught:
        names = zoo.list_models()
    assert "shapes_net" not in names and "lenet5" in names
    (message,) = [str(w.message) for w in caught]
    assert "\n" not in message and "'shapse'" in message and "installed: shapes" in message
    assert "did you mean 'shapes'" in message


@pytest.mark.parametrize("value", ["", "shapes", " shapes , "])
def test_zoo_load_plugins_naming_installed_plugins_or_none_is_silent(reg, monkeypatch, value):
    ep = FakeEntryPoint("shapes", plugin_calling("shapes", lambda: None))
    monkeypatch.setattr(plugin_manager.importlib_metadata, "entry_points", lambda group: [ep])
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", value)
    plugin_manager.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ZooPluginWarning)
        assert ("shapes_net" in zoo.list_models()) == bool(value.strip())


# ---------------------------------------------------------------------------------------------------------
# An ASCII locale: LANG=C, PYTHONIOENCODING=ascii
# ---------------------------------------------------------------------------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NON_ASCII_PLUGIN = textwrap.dedent(
    """
    import sys, types, zoo
    import torch.nn as nn
    from zoo import plugin_manager
    mod = types.ModuleType("plugin_cafe")

    @zoo.hookimpl
    def register_models(register):
        raise RuntimeError("caf\\u00e9 \\u2014 broken \\u2026 \\u2717")

    mod.register_models = register_models
    plugin_manager.register_plugin(mod, name="pl\\u00fcgin")
    from zoo.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def run_ascii(argv: list[str], tty: bool) -> tuple[int, str, str]:
    env = dict(os.environ, LANG="C", LC_ALL="C", PYTHONIOENCODING="ascii", ZOO_LOAD_PLUGINS="", TERM="xterm")
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-c", NON_ASCII_PLUGIN, *argv]
    if not tty:
        proc = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
        return proc.returncode, proc.stdout.decode("ascii"), proc.stderr.decode("ascii")
    import pty

    master, slave = pty.openpty()  # a terminal: the table would be drawn with box characters
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=slave, stderr=subprocess.PIPE)
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        _, err = proc.communicate(timeout=120)
    finally:
        os.close(master)
    return proc.returncode, b"".join(chunks).decode("ascii"), err.decode("ascii")


@pytest.mark.parametrize("tty", [False, True], ids=["pipe", "terminal"])
@pytest.mark.parametrize("command", [["list"], ["plugins"], ["list", "--long", "lenet*"]])
def test_list_and_plugins_work_in_an_ascii_locale(command, tty):
    if tty and not hasattr(os, "openpty"):
        pytest.skip("no pseudo-terminals here")
    code, out, err = run_ascii(command, tty)
    assert code == 0, err
    assert "lenet5" in out or "pl\\xfcgin" in out
    if command == ["plugins"]:  # the non-ASCII name and error are shown escaped, not dropped
        assert "pl\\xfcgin" in out and "caf\\xe9" in out and "failed" in out


# ---------------------------------------------------------------------------------------------------------
# Builders bounded in time where zoo builds many models
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def stuck_builder(reg):
    """A plugin model whose builder waits until the test ends (at most 30 s, then builds: on code without a time
    bound the test fails instead of hanging)."""
    import threading

    release = threading.Event()

    def stuck_net(*, num_classes=10, in_chans=1, img_size=8, drop_rate=0.0):
        """A builder that does not return (Nobody, 2024)."""
        release.wait(30)
        return tiny(num_classes=num_classes, in_chans=in_chans, img_size=img_size)

    mod = types.ModuleType("stuck")

    @zoo.hookimpl
    def register_models(register):
        register("stuck_net", stuck_net, **CARD)

    mod.register_models = register_models
    plugin_manager.register_plugin(mod, name="stuck")
    yield "stuck_net"
    release.set()


def test_the_kit_fails_a_builder_that_does_not_return(stuck_builder):
    from zoo.testing import check_architecture

    with pytest.raises(AssertionError) as info:
        check_architecture(stuck_builder, build_timeout=0.5)
    assert str(info.value) == "stuck_net: the builder did not return within 0.5 s (build_timeout=)"


def test_list_long_gives_a_failed_row_for_a_builder_that_does_not_return(stuck_builder, monkeypatch, capsys):
    import json

    from zoo import cli

    monkeypatch.setenv("ZOO_BUILD_TIMEOUT", "3")
    assert cli.main(["list", "--long", "--json", "[ls]*"]) == 0
    captured = capsys.readouterr()
    rows = {r["name"]: r for r in json.loads(captured.out)}
    assert rows["stuck_net"]["params"] is None and "did not return within 3 s" in rows["stuck_net"]["error"]
    assert rows["lenet5"]["params"] == zoo.info("lenet5").num_params and "error" not in rows["lenet5"]
    (warning,) = [line for line in captured.err.splitlines() if "stuck_net" in line]
    assert warning.startswith("zoo: warning: stuck_net (plugin 'stuck'): its builder did not return within 3 s")
    assert cli.main(["list", "--long", "stuck*"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("stuck_net"))
    assert "did not return within 3 s" in row


def test_bench_gives_a_failed_row_for_a_builder_that_does_not_return(stuck_builder, monkeypatch, capsys):
    from zoo import cli

    monkeypatch.setenv("ZOO_BUILD_TIMEOUT", "1")
    assert cli.main(["bench", "stuck_net", "mlp", "--runs", "1", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "did not return within 1 s" in next(line for line in out.splitlines() if "stuck_net" in line)


SPINNING_PLUGIN = textwrap.dedent(
    """
    import sys, types, zoo
    from zoo import plugin_manager

    def spinning_net(*, num_classes=10, in_chans=1, img_size=8, drop_rate=0.0):
        '''A builder that never returns and never sleeps (Nobody, 2024).'''
        while True:
            pass

    mod = types.ModuleType("spinning")

    @zoo.hookimpl
    def register_models(register):
        register("spinning_net", spinning_net, family="x", paper="-", year=2024, input_size=(1, 8, 8), num_classes=10)

    mod.register_models = register_models
    plugin_manager.register_plugin(mod, name="spinning")
    if sys.argv[1] == "kit":
        from zoo.testing import check_architecture
        try:
            check_architecture("spinning_net", build_timeout=1)
        except AssertionError as exc:
            print(exc)
        sys.exit(0)
    from zoo.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.parametrize("argv", [["list", "--long", "sp*"], ["kit"]], ids=["list-long", "kit"])
def test_a_builder_that_spins_for_ever_does_not_keep_the_process_alive(argv):
    env = dict(os.environ, ZOO_LOAD_PLUGINS="", ZOO_BUILD_TIMEOUT="1")
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", SPINNING_PLUGIN, *argv], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "did not return within 1 s" in proc.stdout


def test_call_within_keeps_the_callers_device_and_grad_mode_and_raises_what_it_raised():
    import torch

    from zoo.deadline import call_within

    with torch.device("meta"), torch.no_grad():
        layer, grad = call_within(5, "a linear layer", lambda: (nn.Linear(2, 2), torch.is_grad_enabled()))
    assert layer.weight.is_meta and grad is False
    with pytest.raises(KeyError, match="inside"):
        call_within(5, "x", lambda: {}["inside"])
    assert call_within(None, "x", lambda: 3) == 3


@pytest.mark.parametrize("value", ["-1", "abc", "nan"])
def test_a_bad_build_timeout_is_one_line(monkeypatch, value):
    from zoo.deadline import build_timeout

    monkeypatch.setenv("ZOO_BUILD_TIMEOUT", value)
    with pytest.raises(ValueError, match="ZOO_BUILD_TIMEOUT=.*expected a number of seconds"):
        build_timeout()


# ---------------------------------------------------------------------------------------------------------
# A dataset loader returning something else than a Dataset
# ---------------------------------------------------------------------------------------------------------


def _not_a_dataset_cases():
    import copy

    good = zoo.load_dataset("synthetic", train_size=20, test_size=10, img_size=8)
    bad_train = copy.copy(good)
    bad_train.train = "x"
    return {
        "str": ("a string", "returned str, not a zoo.data.Dataset"),
        "none": (None, "returned NoneType, not a zoo.data.Dataset"),
        "dict": ({"train": good.train}, "returned dict, not a zoo.data.Dataset"),
        "split": (good.train, "returned Split, not a zoo.data.Dataset"),
        "bad-train": (bad_train, "has a train split of type str, not a zoo.data.Split"),
    }


@pytest.mark.parametrize("case", ["str", "none", "dict", "split", "bad-train"])
def test_a_dataset_loader_returning_something_else_is_the_plugins_error(reg, case, capsys):
    from zoo import cli
    from zoo.containment import PluginError

    value, message = _not_a_dataset_cases()[case]
    mod = types.ModuleType("odd_data")

    @zoo.hookimpl
    def register_datasets(register):
        register("odd", lambda root=None, **options: value, num_classes=10, input_size=(1, 8, 8))

    mod.register_datasets = register_datasets
    plugin_manager.register_plugin(mod, name="odd_data")
    with pytest.raises(PluginError) as info:
        zoo.load_dataset("odd")
    text = str(info.value)
    assert "\n" not in text and text.startswith("dataset 'odd' (plugin 'odd_data'): the loader") and message in text
    assert cli.main(["train", "mlp", "--dataset", "odd", "--epochs", "1"]) == 1
    assert capsys.readouterr().err.strip() == f"zoo: error: {text}"


@pytest.mark.parametrize("seconds", [0, -1])
def test_a_time_bound_that_is_not_positive_is_refused(seconds):
    from zoo.deadline import call_within

    with pytest.raises(ValueError, match="expected a number of seconds > 0, or None"):
        call_within(seconds, "x", lambda: 1)


def test_a_build_past_its_bound_is_stopped_not_left_spinning():
    from zoo import deadline

    def spin():
        while True:
            pass

    with pytest.raises(deadline.BuildTimeout, match="spin did not return within 0.2 s"):
        deadline.call_within(0.2, "spin", spin)
    import threading

    (worker,) = [t for t in threading.enumerate() if t.name == "zoo: spin"]
    worker.join(60)  # the Abandoned exception raised in it ends the loop
    assert not worker.is_alive()


def test_many_builds_past_their_bound_still_exit_cleanly():
    # builds stopped inside torch's meta-device code: a daemon thread unwound there at exit aborted the process (134)
    env = dict(os.environ, ZOO_LOAD_PLUGINS="", ZOO_BUILD_TIMEOUT="0.05")
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "zoo", "list", "--long", "[dev]*"], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-500:]
    assert "did not return within 0.05 s" in proc.stdout
