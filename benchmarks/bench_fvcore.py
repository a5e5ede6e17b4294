"""fvcore's FLOP count against zoo's (``zoo.summary``: torch's ``FlopCounterMode``, a multiply-add counts 2), per model
and per operator, at each model card's input size, batch 1.

fvcore's ``FlopCountAnalysis`` counts one multiply-add as one "flop" (a MAC), so the ratio that says whether the two
count the same work is ``2 x fvcore / zoo``: 1.00 means the same operations; above 1, fvcore counts work zoo leaves
out (normalisation, pooling, element-wise ops); below 1, work fvcore skips (``scaled_dot_product_attention``, which
fvcore has no handle for and reports as unsupported). The operator columns show which.

    python benchmarks/bench_fvcore.py [--models lenet5 vit_base_patch16 ...] [--out fvcore.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import warnings
from collections import Counter

import torch

import zoo
from zoo.comparison.summarize import count_flops

MODELS = [
    "lenet5", "mlp", "alexnet", "googlenet", "densenet121", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0",
    "vit_tiny_patch16", "vit_small_patch16", "vit_base_patch16",
]  # fmt: skip
# zoo's counter (FlopCounterMode) counts these aten ops; fvcore names its handles by the traced op
MATMUL_LIKE = {"conv", "_convolution", "linear", "addmm", "matmul", "bmm", "mm", "einsum", "baddbmm"}


def measure(name: str) -> dict:
    from fvcore.nn import FlopCountAnalysis

    model = zoo.create(name).eval()
    x = torch.randn(1, *zoo.info(name).input_size)
    ours, ours_by_op = count_flops(model, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        macs = analysis.total()
        by_op = Counter(analysis.by_operator())
        unsupported = dict(analysis.unsupported_ops())
    extra = {op: n for op, n in by_op.items() if op not in MATMUL_LIKE and n}
    return {
        "model": name,
        "input": list(x.shape[1:]),
        "zoo_flops": ours,
        "fvcore_macs": int(macs),
        "ratio_2x_fvcore_over_zoo": 2 * macs / ours,
        "fvcore_beyond_matmul": {op: int(n) for op, n in extra.items()},
        "fvcore_unsupported": {k: v for k, v in unsupported.items() if "attention" in k or "sdpa" in k},
        "zoo_sdpa_flops": sum(n for op, n in ours_by_op.items() if "attention" in op),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    import fvcore

    rows = [measure(n) for n in args.models]
    print("| model | zoo GFLOPs | fvcore GMACs | 2 x fvcore / zoo | fvcore counts beyond matmul/conv (GMACs) |")
    print("|---|---:|---:|---:|---|")
    for r in rows:
        beyond = ", ".join(f"{op} {n / 1e9:.3f}" for op, n in sorted(r["fvcore_beyond_matmul"].items())) or "-"
        print(
            f"| `{r['model']}` | {r['zoo_flops'] / 1e9:.3f} | {r['fvcore_macs'] / 1e9:.3f} | "
            f"{r['ratio_2x_fvcore_over_zoo']:.3f} | {beyond} |"
        )
    meta = {"torch": torch.__version__, "fvcore": fvcore.__version__, "python": platform.python_version()}
    print(json.dumps(meta))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
