"""The `zoo` command, called in-process through zoo.cli.main (and once as a real subprocess)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.cli import build_parser, fit_options, main, parse_input


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


@pytest.mark.slow
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
    code, out, err = run(capsys, "evaluate", str(out_dir / "model.safetensors"), "--dataset", "digits",
                         "--img-size", "8", "--limit", "50")  # fmt: skip
    assert code == 0, err
    assert "(test, 50 images)" in out and "top1" in out
    code, out, err = run(capsys, "evaluate", str(out_dir / "model.safetensors"), "--dataset", "digits",
                         "--img-size", "8", "--device", "cpu", "--json")  # fmt: skip
    assert code == 0, err
    if not torch.cuda.is_available():  # one line before anything loads, whatever the spelling of the GPU
        for gpu in ("cuda", "gpu"):
            code, _, err = run(capsys, "evaluate", str(out_dir / "model.safetensors"), "-d", "digits", "--device", gpu)
            assert code == 1 and "no CUDA GPU; use 'cpu' or 'auto'" in one_line_error(err)


def test_fit_flags_come_from_train_config(capsys):
    from zoo.train.config import cli_fields

    for command in ("train", "compare"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0
        for f in cli_fields():
            flag = "--" + f.name.replace("_", "-")
            assert flag in out, (command, flag)
            assert " ".join(f.metadata["help"].split()[:3]) in " ".join(out.split()), (command, flag)
    parse = build_parser().parse_args
    # only the options given on the command line reach fit; 'none' spells None
    args = parse(["train", "mlp", "-d", "digits", "-b", "32", "--lr", "0.01", "--scheduler", "none", "--loss", "mse"])
    assert fit_options(args) == {"batch_size": 32, "lr": 0.01, "scheduler": None, "loss": "mse"}
    args = parse(["compare", "mlp", "-d", "digits", "--clip-grad", "1", "--grad-accum", "2", "--val-fraction", "0"])
    assert fit_options(args) == {"clip_grad": 1.0, "grad_accum": 2, "val_fraction": 0.0} and args.epochs == 2
    assert fit_options(parse(["train", "mlp", "-d", "digits"])) == {}
    assert parse(["train", "mlp", "-d", "digits", "-e", "3"]).epochs == 3
    code, _, err = run(capsys, "train", "mlp", "-d", "digits", "--lr", "fast")
    assert code == 2 and "--lr" in one_line_error(err)


def write_mnist(directory: Path, n_train: int = 120, n_test: int = 20) -> None:
    """Raw IDX files of random 28 x 28 digits, as MNIST ships them."""
    rng = np.random.default_rng(0)

    def idx(arr: np.ndarray) -> bytes:
        return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()

    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        (directory / f"{prefix}-images-idx3-ubyte").write_bytes(idx(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)))
        (directory / f"{prefix}-labels-idx1-ubyte").write_bytes(idx(np.arange(n, dtype=np.uint8) % 10))


def test_root_and_limit(capsys, tmp_path):
    write_mnist(tmp_path / "mnist")
    out_dir = tmp_path / "run"
    data_args = ["--dataset", "mnist", "--root", str(tmp_path / "mnist")]
    code, out, err = run(capsys, "train", "mlp", *data_args, "--limit", "100", "-e", "1", "--out", str(out_dir))
    assert code == 0, err
    history = json.loads((out_dir / "history.json").read_text())
    assert "mlp on mnist: 1 epoch" in out and history["epochs"]
    code, out, err = run(capsys, "evaluate", str(out_dir / "model.safetensors"), *data_args, "--limit", "10")
    assert code == 0, err
    assert "(test, 10 images)" in out
    code, out, err = run(capsys, "compare", "mlp", *data_args, "--limit", "100", "-e", "1", "--throughput-batch", "2",
                         "--format", "json")  # fmt: skip
    assert code == 0, err
    (row,) = json.loads(out)["rows"]
    assert row["error"] is None and row["dataset"] == "mnist[limit=100]"
    # bad values: usage errors (exit 2), one line, before any training
    code, _, err = run(capsys, "train", "mlp", *data_args, "--limit", "0")
    assert code == 2 and "--limit 0" in one_line_error(err)
    code, _, err = run(capsys, "evaluate", str(out_dir / "model.safetensors"), "--dataset", "digits", "--root", "x")
    assert code == 2 and "takes no root" in one_line_error(err)
    code, _, err = run(capsys, "train", "mlp", "--dataset", "mnist", "--root", str(tmp_path / "nowhere"), "-e", "1",
                       "--out", str(tmp_path / "fresh"))  # fmt: skip
    assert code == 1 and "root" in one_line_error(err)


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory):
    """An MLP trained two epochs on 8 x 8 digits, saved; and PNGs of two test digits."""
    tmp = tmp_path_factory.mktemp("cli_predict")
    assert main(["train", "mlp", "-d", "digits", "--img-size", "8", "-e", "2", "--out", str(tmp), "--seed", "0"]) == 0
    from PIL import Image

    data = zoo.load_dataset("digits", img_size=8)
    pngs = []
    for i in range(2):
        pngs.append(tmp / "images" / f"digit{i}.png")
        pngs[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(data.test.images[i, 0].numpy()).save(pngs[-1])
    return tmp / "model.safetensors", pngs, data


def test_predict_prints_one_line_per_image(capsys, digits_checkpoint):
    ckpt, pngs, data = digits_checkpoint
    code, out, err = run(capsys, "predict", str(ckpt), str(pngs[0]), str(pngs[1]))
    assert code == 0 and err == ""
    lines = out.strip().splitlines()
    model = zoo.load(ckpt)
    expected = zoo.predict(model, pngs)
    assert lines == [f"{p}: {r['label']} (p={r['probability']:.2f})" for p, r in zip(pngs, expected)]
    code, out, _ = run(capsys, "predict", str(ckpt), str(pngs[0].parent), "--topk", "3")
    first = out.strip().splitlines()[0]
    assert code == 0 and first.startswith(f"{pngs[0]}: ") and "; top-3: " in first and len(out.splitlines()) == 2
    code, out, _ = run(capsys, "predict", str(ckpt), str(pngs[0]), "--json", "-k", "2", "--device", "cpu")
    (record,) = json.loads(out)
    assert code == 0 and record["path"] == str(pngs[0]) and len(record["topk"]) == 2
    assert record["label"] == expected[0]["label"] and record["label"] in data.classes


def test_predict_errors(capsys, digits_checkpoint, tmp_path):
    ckpt, pngs, _ = digits_checkpoint
    code, _, err = run(capsys, "predict", str(tmp_path / "nope.safetensors"), str(pngs[0]))
    assert code == 1 and "does not exist" in one_line_error(err)
    code, _, err = run(capsys, "predict", str(ckpt), str(tmp_path / "nope.png"))
    assert code == 1 and "nope.png' does not exist" in one_line_error(err)
    (tmp_path / "a.txt").write_text("text")
    code, _, err = run(capsys, "predict", str(ckpt), str(tmp_path / "a.txt"))
    assert code == 1 and "is not an image file" in one_line_error(err)
    code, _, err = run(capsys, "predict", str(ckpt), str(pngs[0]), "--topk", "0")
    assert code == 2 and "--topk" in one_line_error(err)
    code, _, err = run(capsys, "predict", str(ckpt))
    assert code == 2 and "IMAGE" in one_line_error(err)


def test_train_owns_its_out_folder(capsys, tmp_path):
    out = tmp_path / "run"
    base = ("train", "mlp", "--dataset", "synthetic", "--limit", "40", "-e", "1", "-b", "16", "--no-progress")
    code, _, _ = run(capsys, *base, "--out", str(out))
    assert code == 0 and (out / "model.safetensors").exists()
    code, _, err = run(capsys, *base, "--out", str(out))
    assert code == 2 and "already holds a run; pass --resume to continue it, --overwrite" in one_line_error(err)
    code, stdout, _ = run(capsys, *base[:-3], "-e", "2", "-b", "16", "--no-progress", "--out", str(out), "--resume")
    history = json.loads((out / "history.json").read_text())
    assert code == 0 and [e["epoch"] for e in history["epochs"]] == [1, 2]
    code, _, _ = run(capsys, *base, "--out", str(out), "--overwrite")
    assert code == 0 and len(json.loads((out / "history.json").read_text())["epochs"]) == 1
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, *base, "--out", str(tmp_path / "file"))
    assert code == 2 and "is a file" in one_line_error(err)


def test_a_torn_last_line_in_a_run_dir_is_dropped_and_the_model_run_again(tmp_path):
    from zoo.comparison import Results, compare

    data = zoo.load_dataset("synthetic", img_size=16, in_chans=1, train_size=48, test_size=16)
    opts = dict(dataset=data, epochs=1, latency_runs=0, throughput_batch=4, progress=False, run_dir=tmp_path)
    compare(["mlp"], **opts)
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write('{"model": "lenet5", "par')  # a crash in the middle of appending lenet5's row
    with pytest.warns(UserWarning, match="torn last line"):
        assert [r["model"] for r in Results.load(tmp_path).rows] == ["mlp"]
    with pytest.warns(UserWarning, match="torn last line"):
        results = compare(["mlp", "lenet5"], **opts)
    assert [r["model"] for r in results.rows] == ["mlp", "lenet5"] and results.rows[1]["error"] is None
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line) for line in lines)


@pytest.mark.slow
def test_ctrl_c_on_train_exits_130_without_a_final_model(tmp_path):
    import signal
    import time

    out = tmp_path / "run"
    argv = [sys.executable, "-m", "zoo", "train", "mlp", "--dataset", "synthetic", "-e", "500", "-b", "16",
            "--limit", "64", "--no-progress", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "last.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "stopped by SIGINT" in err and "rerun with --resume" in err and "Traceback" not in err
    assert not (out / "model.safetensors").exists() and (out / "last.pt").exists()


def test_train_default_out_is_per_model_and_dataset_and_never_collides(tmp_path, monkeypatch, capsys):
    from zoo.cli.training import default_out

    monkeypatch.chdir(tmp_path)
    args = ["train", "mlp", "-d", "digits", "--img-size", "8", "--limit", "60", "-e", "1", "--no-progress"]
    assert main(args) == 0
    assert main(args) == 0  # a second run of the same model: a new folder, not a refusal
    assert main(["train", "lenet5", "-d", "digits", "--limit", "60", "-e", "1", "--no-progress"]) == 0
    runs = tmp_path / "runs" / "train"
    assert sorted(p.name for p in runs.iterdir()) == ["lenet5-digits", "mlp-digits", "mlp-digits-2"]
    assert all((p / "model.safetensors").is_file() for p in runs.iterdir())
    assert default_out("mlp", "digits", reuse=True) == str(runs.relative_to(tmp_path) / "mlp-digits-2")
    assert default_out("timm/resnet18", "/data/photos/", reuse=False).endswith("timm_resnet18-photos")
    capsys.readouterr()


def test_bench_checks_its_numbers_and_reports_the_threads_it_chose(capsys):
    for flag in ("--batch", "--runs", "--threads"):
        code, _, err = run(capsys, "bench", "lenet5", flag, "0")
        assert code == 2 and one_line_error(err) == f"zoo: error: {flag} 0: expected a positive number"
    code, out, err = run(capsys, "bench", "lenet5", "--batch", "2", "--runs", "1", "--threads", "1", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["threads"] == 1


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["train", "--help"]])
def test_help_and_version_do_not_import_torch(argv):
    code = (
        "import sys; from zoo.cli import main; rc = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "zoo" in done.stdout
