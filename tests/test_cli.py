"""The `zoo` command, called in-process through zoo.cli.main (and once as a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import zoo
from zoo.cli import main, parse_input


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list(capsys):
    code, out, err = run(capsys, "list")
    assert code == 0 and err == ""
    assert "lenet5" in out and "mlp" in out and out.splitlines()[0].split()[:2] == ["name", "family"]
    code, out, _ = run(capsys, "list", "lenet*", "-1")
    assert code == 0 and out.split() == zoo.list_models("lenet*")
    code, out, _ = run(capsys, "list", "--family", "lenet", "--json")
    rows = json.loads(out)
    assert [r["name"] for r in rows] == zoo.list_models(family="lenet")
    assert rows[0]["input_size"] == list(zoo.info("lenet5").input_size)


def test_info_and_json(capsys):
    code, out, _ = run(capsys, "info", "lenet5")
    assert code == 0 and "61,706" in out and "LeNet" not in out.split("\n")[0]
    code, out, _ = run(capsys, "info", "lenet5", "--json")
    assert json.loads(out) == zoo.info("lenet5").to_dict()


def test_summary(capsys):
    code, out, _ = run(capsys, "summary", "lenet5", "--input", "3x28x28")
    assert code == 0 and "FLOPs" in out and "1x3x28x28" in out
    code, out, _ = run(capsys, "summary", "lenet5", "--json")
    d = json.loads(out)
    assert d["flops"] == zoo.summary("lenet5").flops and d["total_params"] == 61706


def test_plugins(capsys):
    code, out, _ = run(capsys, "plugins")
    assert code == 0 and "zoo.models.lenet" in out and "status" in out
    code, out, _ = run(capsys, "plugins", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["zoo.models.lenet"]["models"] == ["lenet5"] and rows["zoo.models.lenet"]["status"] == "ok"


def test_bench(capsys):
    code, out, _ = run(capsys, "bench", "lenet5", "--batch", "2", "--runs", "1", "--json")
    assert code == 0
    (row,) = json.loads(out)
    assert row["model"] == "lenet5" and row["forward_ms"] > 0 and row["train_step_img_s"] > 0
    code, out, _ = run(capsys, "bench", "lenet5", "--batch", "2", "--runs", "1", "--input", "1x16x16")
    assert code == 0 and "fwd+bwd ms" in out and "1x16x16" in out


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {err!r}"
    assert "Traceback" not in err
    return lines[0]


def test_unknown_model_suggests(capsys):
    code, out, err = run(capsys, "info", "lenet")
    assert code == 2 and out == ""
    assert "did you mean 'lenet5'" in one_line_error(err)


def test_usage_errors_exit_2_with_one_line(capsys):
    for argv in (["summary", "lenet5", "--input", "3x32"], ["bench", "lenet5", "--input", "axbxc"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "expected CxHxW like 3x32x32" in one_line_error(err)
    code, _, err = run(capsys, "train", "mlp", "--dataset", "digits", "--plot", "curves.jpg")  # before training
    assert code == 2 and "expected a .png, .svg or .pdf file" in one_line_error(err)
    code, _, err = run(capsys, "list", "--bogus")
    assert code == 2 and "--bogus" in one_line_error(err)
    code, _, err = run(capsys, "frobnicate")
    assert code == 2 and "frobnicate" in one_line_error(err)
    code, _, err = run(capsys, "compare", "mlp", "--dataset", "digitz")
    assert code == 2 and "unknown dataset 'digitz'" in one_line_error(err)
    code, _, err = run(capsys, "compare", "mlp")
    assert code == 2 and "--dataset" in one_line_error(err)


def test_missing_checkpoint_fails_with_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "evaluate", str(tmp_path / "nope.safetensors"), "--dataset", "digits")
    assert code == 1 and "does not exist" in one_line_error(err)


def test_parse_input():
    assert parse_input("3x32x32") == (3, 32, 32)
    assert parse_input("1,28,28") == (1, 28, 28)


def test_version_and_help(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"zoo {zoo.__version__}"
    code, out, _ = run(capsys)
    assert code == 2 and "compare" in out


def test_python_m_zoo_list_subprocess():
    env = dict(os.environ, ZOO_LOAD_PLUGINS="")
    proc = subprocess.run(
        [sys.executable, "-m", "zoo", "list", "-1"], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "lenet5" in proc.stdout.split()
    proc = subprocess.run([sys.executable, "-m", "zoo", "info", "nope"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_compare_formats_plot_and_run_dir(capsys, tmp_path):
    run_dir = str(tmp_path / "run")
    args = ["compare", "mlp", "--dataset", "digits", "--img-size", "8", "--epochs", "1", "--batch-size", "64"]
    args += ["--throughput-batch", "4", "--run-dir", run_dir]
    code, out, err = run(capsys, *args, "--plot", str(tmp_path / "cmp.png"))
    assert code == 0, err
    assert "top-1 %" in out and "mlp" in out and (tmp_path / "cmp.png").stat().st_size > 0
    # the same run directory: the row is reused, not retrained, in every format
    code, out, _ = run(capsys, *args, "--format", "json")
    assert code == 0 and json.loads(out)["rows"][0]["model"] == "mlp"
    row = json.loads(out)["rows"][0]
    code, out, _ = run(capsys, *args, "--format", "csv")
    assert code == 0 and out.splitlines()[0].startswith("model,params,flops") and str(row["params"]) in out
    code, out, _ = run(capsys, *args, "--format", "markdown")
    assert code == 0 and out.startswith("| model")
    code, _, err = run(capsys, *args, "--plot", "cmp.txt")
    assert code == 2 and ".png" in one_line_error(err)


def test_train_then_evaluate(capsys, tmp_path):
    pytest.importorskip("zoo.engine")
    out_dir = tmp_path / "run"
    args = ["train", "mlp", "--dataset", "digits", "--img-size", "8", "--epochs", "2", "--out", str(out_dir)]
    code, out, err = run(capsys, *args, "--plot", str(out_dir / "curves.png"))
    assert code == 0, err
    assert (out_dir / "history.json").exists() and (out_dir / "model.safetensors").exists()
    assert "2 epochs" in out and (out_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = run(capsys, "evaluate", str(out_dir / "model.safetensors"), "--dataset", "digits",
                         "--img-size", "8", "--json")  # fmt: skip
    assert code == 0, err
    assert 0.3 < json.loads(out)["top1"] <= 1.0
