"""The leaderboard (benchmarks/leaderboard_run.py, leaderboard_page.py): plan, rows, resume, the rendered page."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import re
import types
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import zoo

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def lb():
    """benchmarks/leaderboard_run.py, imported as benchmarks/leaderboard.py imports it (its folder on the path)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCHMARKS))
        yield importlib.import_module("leaderboard_run")


@pytest.fixture(scope="module")
def lt(lb):
    """benchmarks/leaderboard_transfer.py: the pretrained board's weights and fine-tuning."""
    return importlib.import_module("leaderboard_transfer")


@pytest.fixture(scope="module")
def render_page(lb):
    return importlib.import_module("leaderboard_page").render_page


def test_plan_trains_everything_caps_or_calls_a_model_too_slow(lb):
    budget = lb.Budget(epochs=2, max_model_s=60, min_images=500)
    assert lb.plan_images(6000, budget, 1000, 10_000, 40_000)[:2] == ("full", 6000)
    status, n, est = lb.plan_images(6000, budget, 1000, 100, 400)
    assert status == "capped" and 500 <= n < 6000 and n % 10 == 0 and est <= 60
    assert lb.plan_images(6000, budget, 1000, 2, 8)[0] == "too slow"


def test_reference_top1_reads_entries_as_objects_or_dicts(lb):
    entry = types.SimpleNamespace(dataset="ImageNet-1k", metric="acc@1", value=77.692, source="torchvision")
    mnist = {"dataset": "MNIST", "metric": "test error %", "value": 0.95, "source": "LeCun et al. 1998"}
    assert lb.reference_top1(types.SimpleNamespace(reported=(mnist, entry))) == "top-1 77.7% (ImageNet-1k)"
    assert lb.reference_top1(types.SimpleNamespace(reported=[mnist])) == "test error 0.95% (MNIST)"
    assert lb.reference_top1(types.SimpleNamespace()) is None


class _Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom in forward")


@pytest.fixture
def boom_plugin():
    @zoo.hookimpl
    def register_models(register):
        register("boom_net", lambda **kw: _Boom(), family="test", input_size=(1, 16, 16))

    zoo.register_plugin(types.SimpleNamespace(register_models=register_models), name="boom_plugin")
    yield "boom_net"
    zoo.unregister_plugin("boom_plugin")


@pytest.mark.slow
def test_leaderboard_records_failures_resumes_and_renders_without_training(
    tmp_path, boom_plugin, monkeypatch, lb, render_page
):
    budget = lb.Budget(dataset="digits", img_size=16, limit=300, test_limit=100, epochs=1, max_model_s=120,
                       min_images=50, seeds=2)  # fmt: skip
    run = tmp_path / "run"
    lines: list[str] = []
    rows = lb.run_leaderboard(["lenet5", boom_plugin], budget, run, log=lines.append, command="lb --x")
    by = {(r["model"], r["seed"]): r for r in rows}
    assert by[("lenet5", 0)]["status"] == "full" and by[("lenet5", 0)]["top1"] > 0.2
    assert ("lenet5", 1) in by  # fast enough for a second seed
    boom = by[("boom_net", 0)]
    assert boom["status"] == "error" and "boom in forward" in boom["error"] and ("boom_net", 1) not in by
    assert any("boom_net seed 0: error" in line for line in lines)

    # resumed: nothing is run again, failures included; --retry-failed runs only those
    calls = []

    def fake_run_model(name, *args, **kwargs):
        calls.append(name)
        return {"model": name, "seed": 0, "status": "error", "error": "still broken", "wall_s": 0.0}

    monkeypatch.setattr(lb, "run_model", fake_run_model)
    assert len(lb.run_leaderboard(["lenet5", boom_plugin], budget, run, log=lines.append)) == 3 and calls == []
    lb.run_leaderboard(["lenet5", boom_plugin], budget, run, log=lines.append, retry_failed=True)
    assert calls == ["boom_net"]
    with pytest.raises(ValueError, match="other settings"):
        lb.run_leaderboard(["lenet5"], lb.Budget(dataset="digits", img_size=16, epochs=2), run, log=lines.append)

    # a torn last line (a crash mid-append) is ignored
    with open(run / lb.ROWS_FILE, "a") as f:
        f.write('{"model": "torn')
    table = lb.leaderboard_results(run)
    assert [r["model"] for r in table][0] == "lenet5" and table["lenet5"]["top1_seeds"] == 2

    # rendering needs the saved rows only; prose around the markers is kept
    doc = tmp_path / "docs" / "leaderboard.md"
    doc.parent.mkdir()
    doc.write_text("# Leaderboard\n\nintro\n\n<!-- leaderboard:run -->\nold\n<!-- /leaderboard:run -->\n\noutro\n")
    written = render_page([run], doc, tmp_path / "docs" / "img")
    text = doc.read_text()
    assert "intro" in text and "outro" in text and "\nold\n" not in text and "`lb --x`" in text
    assert "| 1 | `lenet5`" in text and "still broken" in text and "±" in text
    assert all(p.exists() for p in written) and len(written) == 5


def test_a_missing_dataset_fails_in_one_line_before_the_run_directory(tmp_path, isolated_data, lb):
    with pytest.raises(FileNotFoundError) as info:
        lb.run_leaderboard(["mlp"], lb.Budget(dataset="cifar10"), tmp_path / "run", log=lambda s: None)
    assert "\n" not in str(info.value) and not (tmp_path / "run").exists()


def test_deadline_stops_fit_at_the_first_epoch_end_past_it(lb):
    history = zoo.train.callbacks.History()
    lb.Deadline(until=0.0).on_epoch_end(history, {"epoch": 2})
    assert history.stop_reason and "time cap" in history.stop_reason


@pytest.mark.slow
def test_pretrained_board_starts_from_the_weights_applies_the_plan_and_keeps_its_run_apart(
    tmp_path, boom_plugin, monkeypatch, lb, lt, render_page
):
    """A weights file generated here (a seeded LeNet-5 for 3 channels and 5 classes: the 1-channel, 10-class digits
    board adapts its stem and gives it a new head), a torchvision twin whose weights are not cached, and a model
    that has none."""
    from safetensors.torch import save_file

    from zoo.train import trainer

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # torch's hub cache: empty
    torch.manual_seed(3)
    source = zoo.create("lenet5", num_classes=5, in_chans=3).state_dict()
    weights = tmp_path / "lenet5_src.safetensors"
    save_file(source, str(weights))
    seen = {}
    real_fit = trainer.fit

    def spy_fit(model, data, **options):  # what fine-tuning starts from, and with which options
        seen[model.zoo_config["name"]] = (
            {k: v.clone() for k, v in model.state_dict().items()},
            len(data.train),
            options,
        )
        return real_fit(model, data, **options)

    monkeypatch.setattr(trainer, "fit", spy_fit)
    monkeypatch.setattr(lb, "probe_speed", lambda *a, **k: (2.0, 8.0))  # slow enough that the plan caps the subset
    budget = lb.Budget(dataset="digits", img_size=16, limit=300, test_limit=100, epochs=2, max_model_s=120,
                       min_images=50, seeds=1)  # fmt: skip
    files = {"lenet5": str(weights), "mlp": str(weights)}  # LeNet-5's weights cannot load into the MLP
    finetune = lt.FineTune(files=files, lr=3e-3, freeze="backbone", unfreeze_at=2)
    run, lines = tmp_path / "run", []
    names = ["lenet5", "mlp", "mobilenet_v3_small", boom_plugin]
    rows = {r["model"]: r for r in lb.run_leaderboard(names, budget, run, log=lines.append, finetune=finetune)}

    lenet = rows["lenet5"]
    assert (
        lenet["weights"] == weights.name and lenet["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    )
    assert sorted(lenet["transfer"]["fresh"]) == ["fc3.bias", "fc3.weight"] and lenet["transfer"]["stem"]
    start, n_trained, options = seen["lenet5"]
    for key, tensor in source.items():  # the backbone is the file's; the stem is its channel sum (timm's rule)
        if key == "conv1.weight":
            assert torch.allclose(start[key], tensor.sum(1, keepdim=True))
        elif not key.startswith("fc3."):
            assert torch.equal(start[key], tensor), key
    assert options["freeze"] == "backbone" and options["unfreeze_at"] == 2 and options["lr"] == 3e-3
    assert lenet["status"] == "capped" and 50 <= lenet["images"] < 300 and n_trained == lenet["images"]
    assert lenet["top1"] is not None and any("lenet5 seed 0: capped from lenet5_src" in line for line in lines)
    missing = rows["mobilenet_v3_small"]
    assert missing["status"] == "no weights" and missing["error"].startswith(lt.NOT_CACHED)
    assert "mobilenet_v3_small.tv_in1k" in missing["error"] and "mobilenet_v3_small" not in seen
    assert rows["boom_net"]["status"] == "no weights" and rows["boom_net"]["error"] == "no weights"
    mlp = rows["mlp"]  # a failed load still names the weights it tried
    assert mlp["status"] == "error" and "weights do not fit 'mlp'" in mlp["error"] and mlp["weights"] == weights.name

    # the pretrained run directory is never resumed as a from-scratch one, nor with other fine-tuning
    with pytest.raises(ValueError, match="holds a pretrained leaderboard"):
        lb.run_leaderboard(["lenet5"], budget, run, log=lines.append)
    with pytest.raises(ValueError, match="other settings"):
        lb.run_leaderboard(["lenet5"], budget, run, log=lines.append, finetune=lt.FineTune(lr=1e-3))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "config.json").write_text(json.dumps(dataclasses.asdict(budget)))
    with pytest.raises(ValueError, match="holds a from-scratch leaderboard"):
        lb.run_leaderboard(["lenet5"], budget, scratch, log=lines.append, finetune=finetune)

    doc = tmp_path / "leaderboard.md"
    render_page([run], doc, tmp_path / "img")
    text = doc.read_text()
    assert "fine-tuned from pretrained weights" in text and re.search(r"\| fine-tuned from +\|", text)
    assert f"`{weights.name}` (sha256 {lenet['weights_sha256'][:8]})" in text  # the table's cell; under the tables:
    assert "- `lenet5`: weights adapted (new head, stem 3→1 channels)." in text
    assert "freeze='backbone'" in text and "2 without usable weights" in text
    assert "| weights not cached" in text and "`download=True` fetches them): `mobilenet_v3_small.tv_in1k`" in text


def test_the_default_weights_are_a_transfer_and_a_named_tag_is_used_as_asked(lt):
    # lenet5's shipped tags: digits and fashion_mnist; on digits the default is the other data's
    weights, fields = lt.choose_weights("lenet5", "digits", lt.FineTune())
    assert weights == "fashion_mnist" and fields == {
        "weights": "lenet5.fashion_mnist",
        "weights_dataset": "fashion-mnist",
    }
    assert lt.choose_weights("lenet5", "digits", lt.FineTune(weights="digits"))[0] == "digits"
    with pytest.raises(lt.NoWeights, match="has no tag 'imagenet'.*digits, fashion_mnist"):
        lt.choose_weights("lenet5", "digits", lt.FineTune(weights="imagenet"))


def test_fine_tuning_options_without_pretrained_are_refused(lt):
    cli = importlib.import_module("leaderboard")
    args = types.SimpleNamespace(pretrained=False, weights=None, weights_file=[], lr=1e-3, freeze="backbone",
                                 unfreeze_at=None, layer_lr_decay=None)  # fmt: skip
    with pytest.raises(ValueError, match="--lr, --freeze fine-tune: add --pretrained"):
        cli.finetune_from(args, lt.FineTune)
    args.pretrained, args.weights_file = True, ["lenet5"]
    with pytest.raises(ValueError, match="MODEL=PATH"):
        cli.finetune_from(args, lt.FineTune)
    args.weights_file = ["lenet5=w.safetensors"]
    made = cli.finetune_from(args, lt.FineTune)
    assert made.files == {"lenet5": str(Path("w.safetensors").resolve())} and made.fit_options()["freeze"] == "backbone"


@pytest.mark.slow
def test_the_command_line_runs_the_pretrained_board_into_its_own_config(tmp_path, lt, capsys):
    from safetensors.torch import save_file

    cli = importlib.import_module("leaderboard")
    torch.manual_seed(4)
    weights = tmp_path / "w.safetensors"
    save_file(zoo.create("lenet5").state_dict(), str(weights))
    run = tmp_path / "run"
    argv = ["--dataset", "digits", "--img-size", "16", "--limit", "200", "--test-limit", "50", "--epochs", "1",
            "--seeds", "1", "--models", "lenet5", "--run-dir", str(run), "--no-render", "--plugin-dir",
            str(tmp_path / "none")]  # fmt: skip
    assert cli.main([*argv, "--pretrained", "--weights-file", f"lenet5={weights}", "--freeze", "backbone"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["pretrained"]["files"] == {"lenet5": str(weights)} and config["pretrained"]["freeze"] == "backbone"
    (row,) = [json.loads(line) for line in (run / "rows.jsonl").read_text().splitlines()]
    assert row["weights"] == "w.safetensors" and row["top1"] is not None
    # the same directory, without --pretrained: refused in one line, nothing trained
    assert cli.main(argv) == 2
    assert "holds a pretrained leaderboard" in capsys.readouterr().err


def test_the_probe_runs_on_the_threads_fit_would_choose(lb, monkeypatch):
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            seen.append(torch.get_num_threads())
            return self.fc(x)

    monkeypatch.setattr(lb, "step_flops", lambda *a: None)  # every forward below is the probe's
    monkeypatch.setattr(lb, "choose_threads", lambda flops, device=None: 1)
    with zoo.threads.use_threads(2):
        lb.probe_speed(Spy(), (4,), torch.device("cpu"), batch=2, big_batch=2)
        assert torch.get_num_threads() == 2  # set back after the probe
    assert seen and set(seen) == {1}
