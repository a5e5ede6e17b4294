"""``zoo train --config`` / ``--print-config`` and the boolean fit flags (``--compile``, ``--channels-last``,
``--augment``) and ``--in-chans``."""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest

from zoo.cli import main
from zoo.train.config import TrainConfig

RUN = {"model": "mlp", "dataset": "digits", "limit": 60, "epochs": 1, "seed": 0, "batch_size": 32, "lr": 0.01}
FLAGS = ["mlp", "--dataset", "digits", "--limit", "60", "--epochs", "1", "--seed", "0", "--batch-size", "32"]


def _printed(capsys, argv: list[str]) -> dict:
    assert main(["train", *argv, "--print-config"]) == 0
    return json.loads(capsys.readouterr().out)


def _scores(history: dict) -> list[dict]:
    keep = ("train_loss", "val_loss", "val_top1", "lr")
    return [{k: e.get(k) for k in keep} for e in history["epochs"]]


def test_config_reproduces_the_history_of_the_same_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_PROGRESS", "0")
    monkeypatch.setenv("ZOO_THREADS", "1")  # the same thread count in both runs: the same float sums
    (tmp_path / "run.json").write_text(json.dumps(RUN))
    assert main(["train", *FLAGS, "--lr", "0.01", "--out", str(tmp_path / "flags")]) == 0
    assert main(["train", "--config", str(tmp_path / "run.json"), "--out", str(tmp_path / "file")]) == 0
    by_flags = json.loads((tmp_path / "flags" / "history.json").read_text())
    by_file = json.loads((tmp_path / "file" / "history.json").read_text())
    same = {k: v for k, v in by_flags["config"].items() if k != "checkpoint_dir"}
    assert _scores(by_file) == _scores(by_flags) and {**by_file["config"], "checkpoint_dir": None} == {
        **same,
        "checkpoint_dir": None,
    }
    assert by_file["config"]["lr"] == 0.01 and by_file["config"]["batch_size"] == 32


def test_print_config_lists_every_option_and_round_trips(tmp_path, capsys):
    (tmp_path / "run.json").write_text(json.dumps(RUN))
    printed = _printed(capsys, ["--config", str(tmp_path / "run.json")])
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= set(printed)
    assert printed["model"] == "mlp" and printed["dataset"] == "digits" and printed["limit"] == 60
    assert printed["lr"] == 0.01 and printed["optimizer"] == TrainConfig().optimizer  # the file's, then defaults
    (tmp_path / "again.json").write_text(json.dumps(printed))
    assert _printed(capsys, ["--config", str(tmp_path / "again.json")]) == printed


def test_flags_override_the_file(tmp_path, capsys):
    (tmp_path / "run.json").write_text(json.dumps({**RUN, "augment": False, "channels_last": True}))
    argv = ["--config", str(tmp_path / "run.json"), "--lr", "0.5", "--epochs", "3", "--dataset", "iris"]
    printed = _printed(capsys, [*argv, "--augment", "--no-channels-last", "--compile", "--in-chans", "3"])
    assert (printed["lr"], printed["epochs"], printed["dataset"]) == (0.5, 3, "iris")
    assert (printed["augment"], printed["channels_last"], printed["compile"], printed["in_chans"]) == (
        True,
        False,
        True,
        3,
    )
    assert printed["seed"] == 0 and printed["batch_size"] == 32  # not given: the file's


def test_without_flags_or_file_the_defaults_hold(capsys):
    printed = _printed(capsys, FLAGS)
    assert (printed["augment"], printed["compile"], printed["channels_last"]) == (False, False, None)
    assert printed["epochs"] == 1 and printed["lr"] is None and printed["drop_rate"] == 0.0


def test_an_unknown_key_is_one_line_with_the_nearest(tmp_path, capsys):
    (tmp_path / "run.json").write_text(json.dumps({**RUN, "batchsize": 64}))
    assert main(["train", "--config", str(tmp_path / "run.json")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "unknown key 'batchsize'" in err and "'batch_size'" in err


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("run.toml", "x = 1", "expected a .yaml, .yml or .json file"),
        ("run.json", "[1, 2]", "holds a list; expected a mapping"),
        ("run.json", "{oops", "is not JSON"),
        ("run.json", json.dumps({**RUN, "callbacks": ["x"]}), "'callbacks' cannot come from a file"),
        ("run.json", json.dumps({"epochs": 1}), "zoo train needs the model"),
    ],
)
def test_bad_files_are_usage_errors(tmp_path, capsys, name, text, expected):
    (tmp_path / name).write_text(text)
    assert main(["train", "--config", str(tmp_path / name)]) == 2
    assert expected in capsys.readouterr().err


def test_yaml_reads_with_pyyaml_and_says_what_is_missing_without(tmp_path, capsys, monkeypatch):
    (tmp_path / "run.yaml").write_text("model: mlp\ndataset: digits\nlr: 0.02\nscheduler: null\n")
    if pytest.importorskip("yaml"):
        printed = _printed(capsys, ["--config", str(tmp_path / "run.yaml")])
        assert printed["lr"] == 0.02 and printed["scheduler"] is None
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if pyyaml were not installed
    assert main(["train", "--config", str(tmp_path / "run.yaml")]) == 2
    assert "YAML needs pyyaml (pip install pyyaml)" in capsys.readouterr().err
