"""Train zoo's own weights (LeNet-5 and the MLP on digits and Fashion-MNIST) with zoo's ``fit``, and write them.

One command makes every shipped file and its record::

    python benchmarks/train_weights.py                      # all four, into zoo/weights_data/
    python benchmarks/train_weights.py lenet5.digits        # one of them (the others' records are kept)
    python benchmarks/train_weights.py --check              # re-train into a temporary folder and compare

Each run seeds everything (``seed=0``), trains with ``zoo.fit``'s default recipe for the epochs below on 2 CPU
threads, scores the test split the record names, and writes ``<model>_<tag>.safetensors`` (float32) plus its entry
in ``records.json``: sha256, size, the input record, the class names, the test accuracy and this exact command.
``--check`` re-trains and prints the recorded and the re-measured accuracy side by side (bit-equal weights are not
expected across machines or torch versions; the accuracy should agree to within a point).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

import zoo
from zoo.files import atomic_write
from zoo.pretrained import sha256_of

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "zoo" / "weights_data"
LICENCE = "MIT"
SEED = 0

# model, tag, dataset, its load_dataset options, builder keywords, fit options. The MLP is shipped with hidden
# layers of 256 and 128 (not the default 512, 256): at 28 px that keeps the file under 1 MB in float32.
# Fashion-MNIST trains on a stratified 10,000 of its 60,000 training images (limit=10000; the test split keeps all
# 10,000), so that each run takes minutes on 2 shared CPU cores; the full set would give a few points more.
VARIANTS = {
    "lenet5.digits": ("lenet5", "digits", "digits", {}, {}, {"epochs": 15}),
    "mlp.digits": ("mlp", "digits", "digits", {"img_size": 8}, {"img_size": 8, "hidden_sizes": [256, 128]},
                   {"epochs": 30}),
    "lenet5.fashion_mnist": ("lenet5", "fashion_mnist", "fashion-mnist", {"limit": 10000}, {"img_size": 28},
                             {"epochs": 5}),
    "mlp.fashion_mnist": ("mlp", "fashion_mnist", "fashion-mnist", {"limit": 10000}, {"hidden_sizes": [256, 128]},
                          {"epochs": 5}),
}  # fmt: skip
DATASET_LICENCES = {"digits": "CC BY 4.0 (UCI optical digits, via scikit-learn)", "fashion-mnist": "MIT (Zalando)"}


def inputs_of(data_record: dict) -> dict:
    """The input record (the keys of ``zoo.inputs.InputRecord``) of the data record ``fit`` left on the model."""
    return {
        "input_size": list(data_record["input_size"]),
        "input_dtype": data_record.get("input_dtype"),
        "mean": data_record.get("mean"),
        "std": data_record.get("std"),
        "interpolation": data_record.get("interpolation", "bilinear"),
        "resize_size": data_record.get("resize"),
        "crop_size": data_record.get("crop"),
        "classes": data_record.get("classes"),
        "num_classes": data_record.get("num_classes"),
        "task": data_record.get("task"),
        "loss": data_record.get("loss"),
        "dataset": data_record.get("name"),
        "hflip": bool(data_record.get("hflip", False)),
    }


def save_atomic(state: dict, path: Path, metadata: dict) -> None:
    """Write a safetensors file atomically (``zoo.files.atomic_write``: never a half-written file), readable by all
    (package data)."""
    from safetensors.torch import save

    atomic_write(path, save({k: v.detach().contiguous() for k, v in state.items()}, metadata=metadata))
    os.chmod(path, 0o644)


def train_one(key: str, out: Path, command: str) -> dict:
    """Train the variant ``key``, write its file into ``out`` and return its record."""
    model_name, tag, dataset, data_kw, model_kw, fit_kw = VARIANTS[key]
    torch.manual_seed(SEED)
    data = zoo.load_dataset(dataset, **data_kw)
    model = zoo.create(model_name, **model_kw)
    start = time.perf_counter()
    zoo.fit(model, data, seed=SEED, progress=False, **fit_kw)
    seconds = time.perf_counter() - start
    model.eval()
    metrics = zoo.evaluate(model, data.test)
    file = f"{model_name}_{tag}.safetensors"
    path = out / file
    save_atomic(model.state_dict(), path, {"format": "zoo.weights", "model": model_name, "tag": tag})
    inputs = inputs_of(model.zoo_config["data"])
    record = {
        "model": model_name,
        "tag": tag,
        "file": file,
        "sha256": sha256_of(path),
        "size": path.stat().st_size,
        "inputs": inputs,
        "classes": inputs["classes"],
        "metrics": {"top1": round(100 * metrics.top1, 2), "split": "test", "num_samples": metrics.num_samples},
        "dataset": dataset,
        "licence": f"{LICENCE} (weights); data: {DATASET_LICENCES[dataset]}",
        "kwargs": model_kw,
        "recipe": {
            "command": command,
            "fit": {"seed": SEED, **fit_kw},
            "load_dataset": {"name": dataset, **data_kw},
            "torch": torch.__version__,
            "train_seconds": round(seconds, 1),
        },
    }
    print(f"{key}: test top-1 {record['metrics']['top1']:.2f}% on {metrics.num_samples} images, {record['size']:,} "
          f"bytes, {seconds:.0f} s")  # fmt: skip
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"variants to train (default: all): {', '.join(VARIANTS)}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the files and records.json")
    parser.add_argument("--check", action="store_true", help="re-train into a temporary folder and compare")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; accepted: {', '.join(VARIANTS)}")
    torch.set_num_threads(2)  # the machine the shipped files were made on had 2 cores; so does the recipe
    names = args.names or list(VARIANTS)
    command = "python benchmarks/train_weights.py" + "".join(f" {n}" for n in args.names)
    out = Path(tempfile.mkdtemp()) if args.check else args.out
    out.mkdir(parents=True, exist_ok=True)
    records_path = args.out / "records.json"
    shipped = json.loads(records_path.read_text()) if records_path.exists() else []
    records = {f"{r['model']}.{r['tag']}": r for r in shipped}
    for key in names:
        record = train_one(key, out, command)
        if args.check:
            before = records.get(key, {}).get("metrics", {}).get("top1")
            print(f"  recorded {before}%, re-trained {record['metrics']['top1']}%")
        records[key] = record
    if not args.check:
        if records_path.exists():  # another run may have written since: keep its entries, replace ours
            latest = {f"{r['model']}.{r['tag']}": r for r in json.loads(records_path.read_text())}
            records = {**latest, **{k: records[k] for k in names}}
        text = json.dumps([records[k] for k in sorted(records)], indent=2) + "\n"
        tmp = records_path.with_suffix(".json.tmp")
        tmp.write_text(text)
        os.replace(tmp, records_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
