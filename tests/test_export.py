"""``zoo.export`` and ``zoo export``: every built-in in every format the support table of docs/export.md claims.

The table is the test's expectation: each cell is checked by exporting the model (tiny inputs, a dynamic batch),
running the file (onnxruntime, ``torch.export.load``, ``torch.jit.load``) at two batch sizes and comparing with the
model; the FX column by torchvision's ``create_feature_extractor``. A cell marked ✓ must round-trip, one marked ✗
must fail, so the table cannot drift from what the code does. The heavy models run in the full suite only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import zoo
from zoo.cli import main
from zoo.export import FORMATS, ExportError, check_export, export

ROOT = Path(__file__).resolve().parent.parent
TABLE_COLUMNS = (*FORMATS, "fx")
TOLERANCE = 1e-4
# quick subset: one small model of most families; the rest (and ONNX, slow to export) in the full suite
QUICK = {"lenet5", "mlp", "mobilenet_v3_small", "vit_tiny_patch16", "densenet_bc_100_k12", "googlenet"}
QUICK_ONNX = {"lenet5", "vit_tiny_patch16"}


def support_table() -> dict[str, dict[str, bool]]:
    """docs/export.md's table: ``{model: {column: supported}}``."""
    text = (ROOT / "docs" / "export.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 1 + len(TABLE_COLUMNS) and re.fullmatch(r"`[\w.]+`", cells[0]):
            rows[cells[0].strip("`")] = {col: cell == "✓" for col, cell in zip(TABLE_COLUMNS, cells[1:])}
    return rows


def test_the_table_lists_every_builtin(fresh_registry):
    # a registry discovered anew: the built-ins only, whatever an earlier test registered
    assert sorted(support_table()) == zoo.list_models()


def tiny_model(name: str) -> torch.nn.Module:
    model = zoo.create(name, num_classes=4, img_size=32).eval()
    head = model.get_classifier()
    torch.nn.init.normal_(head.weight, std=0.5)  # zoo's ViT starts from a zero head: outputs would all be 0
    return model


def _cases():
    for name, row in sorted(support_table().items()):
        for column in TABLE_COLUMNS:
            quick = name in (QUICK_ONNX if column == "onnx" else QUICK)
            marks = () if quick else pytest.mark.slow
            yield pytest.param(name, column, row[column], marks=marks, id=f"{name}-{column}")


def _round_trip(model: torch.nn.Module, column: str, tmp_path: Path) -> float:
    if column == "fx":
        from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

        last = get_graph_node_names(model)[1][-1]
        x = torch.randn(3, *model.pretrained_cfg["input_size"])
        with torch.no_grad():
            return (create_feature_extractor(model, {last: "out"})(x)["out"] - model(x)).abs().max().item()
    path = export(model, tmp_path / f"model.{column}", column, dynamic_batch=True)
    result = check_export(model, path, column, dynamic_batch=True)
    assert result.batches == (2, 3) and result.scale > 0
    assert result.within(TOLERANCE), f"max difference {result.max_diff:.2e} at output scale {result.scale:.2e}"
    return result.max_diff


@pytest.mark.parametrize(("name", "column", "supported"), list(_cases()))
def test_every_builtin_in_every_format_as_the_table_says(name, column, supported, tmp_path):
    if column == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
    model = tiny_model(name)
    if supported:
        assert _round_trip(model, column, tmp_path) <= TOLERANCE * 10
    else:
        with pytest.raises(Exception):  # noqa: B017 (whatever the exporter raises: the table says it fails)
            _round_trip(model, column, tmp_path)


def test_a_changed_model_is_caught(tmp_path):
    model = tiny_model("lenet5")
    path = export(model, tmp_path / "m.pt2", "pt2")
    with torch.no_grad():
        model.get_classifier().bias.add_(1.0)  # the file no longer matches the model
    result = check_export(model, path, "pt2")
    assert result.max_diff == pytest.approx(1.0, abs=1e-5) and not result.within(TOLERANCE)


def test_a_fixed_batch_export_refuses_another_batch(tmp_path):
    path = export(tiny_model("lenet5"), tmp_path / "m.pt2", "pt2")  # no dynamic_batch
    program = torch.export.load(str(path)).module()
    with pytest.raises(Exception, match="(?i)shape|size|guard|expected"):
        program(torch.randn(3, 1, 32, 32))


def test_export_refuses_an_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown export format 'onx'; accepted: onnx, pt2, torchscript.*'onnx'"):
        export(tiny_model("lenet5"), tmp_path / "m", "onx")


def test_a_model_without_an_input_size_needs_one(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
    with pytest.raises(ExportError, match="records no input size"):
        export(model, tmp_path / "m.pt2", "pt2")
    assert export(model, tmp_path / "m.pt2", "pt2", size=(3, 2, 2)).is_file()


# ---------------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------------


def test_cli_exports_a_name_and_checks_it(tmp_path, capsys):
    out = tmp_path / "lenet.ts.pt"
    assert main(["export", "lenet5", "--format", "torchscript", "--out", str(out), "--check", "--dynamic-batch"]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and f"wrote {out}" in text
    assert re.search(r"torch\.jit\.load at batch 2, 3: max difference \S+ .*: ok", text)
    loaded = torch.jit.load(str(out))
    assert loaded(torch.randn(5, 1, 32, 32)).shape == (5, 10)


def test_cli_exports_a_checkpoint_at_its_recorded_input(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    zoo.save(zoo.create("mlp", num_classes=3, img_size=20), tmp_path / "mlp.safetensors")
    assert main(["export", "mlp.safetensors", "-f", "pt2", "--check", "--json"]) == 0
    import json

    record = json.loads(capsys.readouterr().out)
    assert record["file"] == "mlp.pt2" and record["ok"] and record["max_diff"] <= TOLERANCE
    program = torch.export.load("mlp.pt2").module()
    assert program(torch.randn(2, 1, 20, 20)).shape == (2, 3)


def test_the_command_offers_the_formats_zoo_export_has():
    from zoo.cli import export as cli_export

    assert cli_export.FORMATS == FORMATS


def test_cli_refuses_bad_flags_in_one_line(capsys):
    assert main(["export", "lenet5", "--format", "tflite"]) == 2
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
    assert main(["export", "lenet5", "--img-size", "0"]) == 2
    assert "--img-size 0: expected a positive number" in capsys.readouterr().err
    assert main(["export", "lenet5", "--check", "--tolerance", "0"]) == 2
    assert "--tolerance 0.0: expected a positive number" in capsys.readouterr().err
