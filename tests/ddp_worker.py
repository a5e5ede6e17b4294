"""Run by tests/test_ddp.py under ``torchrun --nproc_per_node=2``: a tiny fit, gloo on CPU or nccl on GPUs.

Each rank saves its final weights and what it observed after fit to ``<out>/rank<R>.pt``.
"""

from __future__ import annotations

import gc
import os
import sys

import torch

import zoo


def main(out: str, device: str) -> None:
    torch.set_num_threads(1)
    data = zoo.load_dataset("synthetic", in_chans=1, img_size=16, num_classes=4, train_size=130, test_size=30)
    torch.manual_seed(int(os.environ["RANK"]))  # different inits per rank: DDP must broadcast rank 0's
    model = zoo.create("lenet5", num_classes=4, in_chans=1, img_size=16)
    ckpt_dir = os.path.join(out, "ckpt")
    history = zoo.fit(model, data, epochs=2, batch_size=16, seed=0, device=device, checkpoint_dir=ckpt_dir)
    metrics = zoo.evaluate(model, data)  # where the model is: cuda:LOCAL_RANK after a GPU fit

    from torch.nn.parallel import DistributedDataParallel

    gc.collect()
    torch.save(
        {
            "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "device": history.device,
            "bare": not isinstance(model, DistributedDataParallel),
            "ddp_alive": sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects()),
            "group_alive": torch.distributed.is_initialized(),
            "world_size": history.world_size,
            "epochs": len(history.epochs),
            "train_samples": history.last["images_per_s"] > 0,
            "val_accuracy": history.last["val_accuracy"],
            "num_samples": metrics["num_samples"],
        },
        os.path.join(out, f"rank{os.environ['RANK']}.pt"),
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "cpu")
