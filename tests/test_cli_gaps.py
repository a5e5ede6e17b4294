"""The command line's gaps filled: datasets listed, bad --source / --optimizer as usage errors (exit 2) with the
nearest name, subcommand help named, --limit below the class count flagged, shell-expanded patterns and families a
plugin provides explained."""

from __future__ import annotations

import pytest

import zoo
from zoo.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_datasets_are_listed_from_the_command_line(capsys):
    code, out, err = run(capsys, "list", "--datasets", "-1")
    assert code == 0 and out.split() == zoo.list_datasets()
    code, out, _ = run(capsys, "list", "--datasets")
    assert "fashion-mnist" in out and "1x28x28" in out and f"{len(zoo.list_datasets())} datasets" in out
    code, out, _ = run(capsys, "--help")
    assert "'zoo COMMAND --help'" in out and "zoo list --datasets" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["list", "--source", "timmm"], "unknown --source 'timmm'; accepted: zoo, all, timm, torchvision; did you "
         "mean 'timm'?"),
        (["train", "lenet5", "-d", "digits", "--optimizer", "adamx"], "unknown optimizer 'adamx'; valid: adamw, adam, "
         "sgd, rmsprop, a torch.optim.Optimizer, or a function params -> Optimizer; did you mean 'adam'?"),
        (["compare", "lenet5", "-d", "digits", "--scheduler", "cosin"], "unknown scheduler 'cosin'"),
        (["train", "lenet5", "-d", "digits", "--lr", "-1"], "--lr -1.0: lr must be a positive number"),
    ],
)  # fmt: skip
def test_bad_option_values_are_usage_errors_with_the_nearest_name(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith(f"zoo: error: {message}") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_unknown_arguments_point_to_the_subcommands_help(capsys):
    code, _, err = run(capsys, "train", "lenet5", "-d", "digits", "--bogus")
    assert code == 2 and err.strip() == "zoo: error: unrecognized arguments: --bogus (see 'zoo train --help')"


def test_a_pattern_the_shell_expanded_into_file_names_gets_the_quoting_hint(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lenet5.py").write_text("")
    (tmp_path / "lenet_notes.txt").write_text("")
    # `zoo list lenet*` in this folder: the shell passes both file names
    code, _, err = run(capsys, "list", "lenet5.py", "lenet_notes.txt")
    assert code == 2 and "the shell expanded an unquoted pattern into file names, so quote it" in err
    assert "(see 'zoo list --help')" in err
    # one file: a pattern that matches nothing, explained
    code, out, err = run(capsys, "list", "lenet5.py")
    assert code == 0 and "0 models" in out and "'lenet5.py' is a file here" in err
    code, _, err = run(capsys, "compare", "lenet5.py", "lenet_notes.txt", "-d", "digits")
    assert code == 2 and "unknown model 'lenet5.py'" in err and "quote it" in err


def test_a_family_that_a_plugin_provides_names_the_plugin(capsys, monkeypatch):
    from pathlib import Path

    import zoo.cli.common as common

    # the table's entry is the repository's plugin: plugins/zoo-resnet is the distribution of that name
    plugin = Path(__file__).resolve().parent.parent / "plugins" / common.PLUGIN_FAMILIES["resnet"]
    assert 'name = "zoo-resnet"' in (plugin / "pyproject.toml").read_text()
    # a family nobody registered (resnet may be loaded by other tests: the mechanism is checked on another name)
    monkeypatch.setitem(common.PLUGIN_FAMILIES, "capsnet", "zoo-capsnet")
    code, out, err = run(capsys, "list", "--family", "capsnet")
    assert code == 0 and "0 models" in out
    assert "the zoo-capsnet plugin provides it: pip install ./plugins/zoo-capsnet" in err
    assert "zoo list '*capsnet*' --source all" in err
    code, _, err = run(capsys, "compare", "--family", "capsnet", "-d", "digits")
    assert code == 2 and "no model of family 'capsnet'" in err and "zoo-capsnet plugin" in err


def test_a_limit_below_the_class_count_is_flagged(capsys, tmp_path):
    data = zoo.load_dataset("digits", img_size=16, limit=3)
    model = zoo.create("mlp", img_size=16, hidden_sizes=(8,))
    zoo.fit(model, data, epochs=1, progress=False)
    path = zoo.save(model, tmp_path / "m.safetensors")
    code, out, err = run(capsys, "evaluate", str(path), "-d", "digits", "--img-size", "16", "--limit", "3")
    assert code == 0 and "(test, 3 images)" in out
    assert "zoo: warning: --limit 3 is below the dataset's 10 classes" in err
    assert "moves in steps of 33 points" in err and "--limit 100" in err


def test_fashion_mnist_class_names_are_the_datasets_authors():
    """Class 9 is "Ankle boot" in Xiao et al.'s Fashion-MNIST and in torchvision (zoo said "Boot")."""
    torchvision = pytest.importorskip("torchvision")
    from zoo.data.sources import FASHION_CLASSES

    assert list(FASHION_CLASSES) == torchvision.datasets.FashionMNIST.classes
    record = next(r for r in zoo.list_weights() if r.name == "lenet5.fashion_mnist")
    assert record.inputs["classes"] == torchvision.datasets.FashionMNIST.classes  # the shipped weights' record


def test_the_training_curves_title_names_the_model_and_the_dataset(capsys, tmp_path, monkeypatch):
    from zoo.train.callbacks import History

    titles = []
    monkeypatch.setattr(History, "plot", lambda self, path, title=None: titles.append(title) or path)
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "mlp", "-d", "digits", "--img-size", "8", "-e", "1", "--out", str(out),
                       "--plot", str(tmp_path / "c.png"), "--no-progress")  # fmt: skip
    assert code == 0, err
    assert titles == ["mlp on digits: 1 epoch (cpu, fp32)"]
