"""Train the weights this plugin ships: ResNet-20 on zoo's ``digits`` (1x32x32, 10 classes), with ``zoo.fit``.

    python plugins/zoo-resnet/make_weights.py

writes ``zoo_resnet/resnet20_digits.safetensors`` and ``zoo_resnet/weights.json`` (its sha256, size, input record,
test accuracy and this command), which ``zoo_resnet.register_weights`` registers as ``resnet20.digits``. Seeded
(``seed=0``) and run on 2 CPU threads; about two minutes on a laptop.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

import zoo

HERE = Path(__file__).resolve().parent / "zoo_resnet"
FILE = "resnet20_digits.safetensors"
KWARGS = {"in_chans": 1}
FIT = {"epochs": 4, "seed": 0}


def main() -> None:
    if "resnet20" not in zoo.list_models():  # run from a checkout, the plugin not installed: load it in-process
        sys.path.insert(0, str(HERE.parent))
        import zoo_resnet

        zoo.register_plugin(zoo_resnet, name="zoo_resnet")
    torch.set_num_threads(2)
    torch.manual_seed(0)
    data = zoo.load_dataset("digits")
    model = zoo.create("resnet20", **KWARGS)
    zoo.fit(model, data, progress=False, **FIT)
    top1 = zoo.evaluate(model.eval(), data.test).top1
    tmp = HERE / (FILE + ".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.chmod(tmp, 0o644)  # package data is read by everyone
    os.replace(tmp, HERE / FILE)  # never a half-written file where the plugin looks
    d = model.zoo_config["data"]
    record = {
        "file": FILE,
        "sha256": hashlib.sha256((HERE / FILE).read_bytes()).hexdigest(),
        "size": (HERE / FILE).stat().st_size,
        "inputs": {
            "input_size": d["input_size"], "input_dtype": d["input_dtype"], "mean": d["mean"], "std": d["std"],
            "interpolation": "bilinear", "classes": d["classes"], "num_classes": d["num_classes"],
            "task": d["task"], "loss": d["loss"], "dataset": "digits", "hflip": False,
        },
        "metrics": {"top1": round(100 * top1, 2), "split": "test"},
        "dataset": "digits",
        "licence": "MIT (weights); data: CC BY 4.0 (UCI optical digits, via scikit-learn)",
        "recipe": {"command": "python plugins/zoo-resnet/make_weights.py", "fit": FIT, "torch": torch.__version__},
        "kwargs": KWARGS,
    }  # fmt: skip
    (HERE / "weights.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"resnet20.digits: test top-1 {record['metrics']['top1']}%, {record['size']:,} bytes")


if __name__ == "__main__":
    main()
