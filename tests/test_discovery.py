"""Discovery through entry points, for real: installed distributions, seen by fresh interpreters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "plugins" / "zoo-resnet"


def run_python(code: str, path: Path | None = None, load_plugins: str | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with ``path`` on sys.path and ZOO_LOAD_PLUGINS as given (None: unset)."""
    env = dict(os.environ)
    env.pop("ZOO_LOAD_PLUGINS", None)
    if load_plugins is not None:
        env["ZOO_LOAD_PLUGINS"] = load_plugins
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory) -> Path:
    """plugins/zoo-resnet installed with pip into a directory of its own (a site directory for the subprocesses)."""
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    # Copy the source so that the build leaves no egg-info in the checkout.
    subprocess.run(["cp", "-r", str(PLUGIN), str(build)], check=True)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    cmd += ["--target", str(target), str(build / PLUGIN.name)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return target


@pytest.mark.slow
def test_out_of_tree_plugin_is_discovered_through_its_entry_point(installed_plugin):
    proc = run_python(
        "import json, sys, zoo; "
        "assert 'zoo_resnet' not in sys.modules; "
        "names = zoo.list_models('resnet*'); card = zoo.info('resnet20'); "
        "print(json.dumps({'names': names, 'plugin': card.plugin, 'version': card.plugin_version, "
        "'rows': [(p.name, p.kind, p.status) for p in zoo.plugins()]}))",
        installed_plugin,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["names"] == ["resnet110", "resnet20", "resnet32", "resnet44", "resnet56"]
    assert (out["plugin"], out["version"]) == ("zoo_resnet", "0.1.0")
    assert ["zoo_resnet", "entry point", "ok"] in out["rows"]


@pytest.mark.slow
def test_the_plugins_own_test_suite_passes(installed_plugin):
    env = dict(os.environ, PYTHONPATH=str(installed_plugin))
    env.pop("ZOO_LOAD_PLUGINS", None)
    tests = PLUGIN / "tests"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tests), str(tests)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_zoo_load_plugins_limits_what_loads(installed_plugin):
    code = "import zoo; print(len(zoo.list_models('resnet*')))"
    assert run_python(code, installed_plugin, load_plugins="").stdout.strip() == "0"
    assert run_python(code, installed_plugin, load_plugins="zoo_resnet").stdout.strip() == "5"
    assert run_python(code, installed_plugin, load_plugins="zoo-resnet").stdout.strip() == "5"  # distribution name
    assert run_python(code, installed_plugin, load_plugins="other").stdout.strip() == "0"


def write_distribution(site: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """A minimal installed distribution (dist-info with entry points) and its modules."""
    info = site / f"{name.replace('-', '_')}-1.2.3.dist-info"  # as pip names it
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[zoo]\n{lines}")
    for mod, src in modules.items():
        (site / f"{mod}.py").write_text(textwrap.dedent(src))


@pytest.mark.slow
def test_a_plugin_that_fails_to_import_does_not_take_the_others_down(tmp_path):
    write_distribution(
        tmp_path,
        "zoo-mixed",
        {"broken": "broken_plugin", "good": "good_plugin"},
        {
            "broken_plugin": "raise ImportError('needs a library that is not installed')\n",
            "good_plugin": """
                import torch.nn as nn
                import zoo

                def good_net(*, num_classes=10, in_chans=1, img_size=8, drop_rate=0.0):
                    \"\"\"A good model.\"\"\"
                    return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * img_size * img_size, num_classes))

                @zoo.hookimpl
                def register_models(register):
                    register("good_net", good_net, family="test", paper="-", year=2024, input_size=(1, 8, 8))
            """,
        },
    )
    proc = run_python(
        "import json, zoo; "
        "print(json.dumps({'models': zoo.list_models(), "
        "'rows': {p.name: [p.status, p.version, p.errors] for p in zoo.plugins()}}))",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "good_net" in out["models"] and "lenet5" in out["models"]
    status, version, errors = out["rows"]["broken"]
    assert status == "failed" and version == "1.2.3"
    assert "needs a library that is not installed" in errors[0]
    assert out["rows"]["good"][0] == "ok"
    assert "zoo plugin 'broken' failed" in proc.stderr  # the warning names it


def test_import_zoo_is_light():
    proc = run_python(
        "import sys, zoo; "
        "heavy = [m for m in ('timm', 'zoo.registry', 'zoo.engine', 'zoo.comparison', 'zoo.data', 'torchvision') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


@pytest.mark.slow
def test_creating_a_builtin_does_not_import_timm():
    proc = run_python("import sys, zoo; zoo.create('lenet5'); zoo.list_models(); print('timm' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


@pytest.mark.slow
def test_subpackages_are_attributes_of_zoo_in_a_fresh_process():
    code = (
        "import zoo\n"
        "assert callable(zoo.train.save) and callable(zoo.data.load_dataset) and zoo.plotting.PLOT_FORMATS\n"
        "assert zoo.comparison.bench_model and zoo.version.__version__ == zoo.__version__\n"
        "print('ok')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


# ---------------------------------------------------------------------------------------------------------
# zoo.models owns its families: a module there that defines FAMILY registers with no edit elsewhere
# ---------------------------------------------------------------------------------------------------------

NEW_FAMILY = '''
"""A family written by a test: one file, no other edit."""

import torch.nn as nn

from zoo.hookspecs import hookimpl
from zoo.models.family import Family


class TinyNet(nn.Module):
    def __init__(self, *, num_classes=10, in_chans=1, img_size=8, drop_rate=0.0):
        super().__init__()
        self.fc = nn.Linear(in_chans * img_size * img_size, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


FAMILY = Family("tinynet", TinyNet, paper="A family from a test", year=2026, input_size=(1, 8, 8), num_classes=10)


@FAMILY.variant(description="One Linear layer.")
def tinynet_test(**kwargs):
    """TinyNet."""
    return TinyNet(**kwargs)


@hookimpl
def register_models(register):
    FAMILY.register_all(register)
'''


def _package_modules() -> list[str]:
    import pkgutil

    import zoo.models

    return sorted(m.name for m in pkgutil.iter_modules(zoo.models.__path__))


def test_every_family_module_registers_its_variants():
    import importlib

    import zoo
    import zoo.models
    from zoo import registry

    families = zoo.models.family_modules()
    assert families == [f"zoo.models.{m}" for m in _package_modules() if m not in zoo.models.SHARED]
    assert len(families) >= 8
    for modname in families:
        module = importlib.import_module(modname)
        assert hasattr(module, "FAMILY") and hasattr(module, "register_models"), f"{modname} is not a family"
        names = [builder.__name__ for builder, _ in module.FAMILY.variants]
        assert names, f"{modname} declares no variant"
        for name in names:
            assert name in zoo.list_models(), f"{modname}: {name} is not registered"
            assert registry.get_spec(name).plugin == modname
    for shared in zoo.models.SHARED:
        assert not hasattr(importlib.import_module(f"zoo.models.{shared}"), "FAMILY")


def test_a_new_family_file_registers_with_no_other_edit(fresh_registry, tmp_path, monkeypatch):
    import importlib
    import sys

    import torch

    import zoo
    import zoo.models

    monkeypatch.setattr(zoo.models, "__path__", [*zoo.models.__path__, str(tmp_path)])
    assert "tinynet_test" not in zoo.list_models()
    (tmp_path / "tinynet_from_test.py").write_text(NEW_FAMILY)  # the one edit: a new file in the package
    importlib.invalidate_caches()
    fresh_registry.reset()
    assert "tinynet_test" in zoo.list_models()
    assert zoo.info("tinynet_test").plugin == "zoo.models.tinynet_from_test"
    assert zoo.create("tinynet_test", num_classes=3)(torch.zeros(2, 1, 8, 8)).shape == (2, 3)
    sys.modules.pop("zoo.models.tinynet_from_test", None)


@pytest.mark.slow
def test_zoo_load_plugins_naming_no_installed_plugin_says_so(installed_plugin):
    proc = run_python("import zoo; print(len(zoo.list_models('resnet*')))", installed_plugin, load_plugins="zoo_resnt")
    assert proc.returncode == 0 and proc.stdout.strip() == "0"
    assert "ZOO_LOAD_PLUGINS names 'zoo_resnt': no installed zoo plugin has that name" in proc.stderr
    assert "did you mean 'zoo_resnet'" in proc.stderr
