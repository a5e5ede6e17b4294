"""Fine-tuning options (zoo/train/finetune.py, zoo/train/optim.py): frozen parameters stay bit-equal through fit and
through a stopped and resumed fit, thaw at ``unfreeze_at``; per-layer lrs as timm's layer decay; weight decay spares
``no_weight_decay()``; one-cycle follows each parameter group's own lr."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.train import optim
from zoo.weights import CheckpointError

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest.py)
FAST = {"batch_size": 32, "progress": False}  # fit options of every tiny run here


class Staged(nn.Module):
    """A stem, two stages and a head, with timm's hooks: get_classifier, group_matcher, no_weight_decay."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.pos = nn.Parameter(torch.zeros(1, 4, 1, 1))  # an "embedding": never weight-decayed
        self.stages = nn.Sequential(
            nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
            nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU()),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(8, 10))

    def forward(self, x):
        return self.head(self.stages(self.stem(x) + self.pos))

    def get_classifier(self):
        return self.head[-1]

    def group_matcher(self, coarse=False):
        return {"stem": r"^stem|^pos", "blocks": r"^stages\.(\d+)" if coarse else r"^stages\.(\d+)\.(\d+)"}

    def no_weight_decay(self):
        return {"pos"}


def staged(seed=0):
    torch.manual_seed(seed)
    return Staged()


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def backbone_keys(model):
    return [k for k in model.state_dict() if not k.startswith("head.")]


def test_a_frozen_backbone_is_bit_equal_after_fit_and_after_a_stopped_and_resumed_fit(
    data, tmp_path, states_equal, signal_at
):
    model = staged()
    before = snapshot(model)
    zoo.fit(model, data, epochs=2, seed=0, freeze="backbone", **FAST)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in backbone_keys(model))  # BatchNorm statistics too
    assert not torch.equal(before["head.3.weight"], after["head.3.weight"])
    assert all(p.requires_grad for p in model.parameters())  # nothing is left frozen

    stopped = staged()
    hook = stopped.register_forward_pre_hook(signal_at(9 + 4))  # batch 4 of epoch 2
    history = zoo.fit(stopped, data, epochs=2, seed=0, freeze="backbone", checkpoint_dir=tmp_path, **FAST)
    hook.remove()
    assert history.interrupted
    resumed = staged(seed=1)  # another init: resume must overwrite it
    zoo.fit(resumed, data, epochs=2, seed=0, freeze="backbone", checkpoint_dir=tmp_path, resume=True, **FAST)
    assert all(torch.equal(before[k], resumed.state_dict()[k]) for k in backbone_keys(resumed))
    assert states_equal(model, resumed)


def test_frozen_stages_thaw_at_unfreeze_at_and_resume_exactly(data, tmp_path, states_equal, signal_at):
    opts = dict(epochs=3, seed=0, freeze=["stem", "pos"], unfreeze_at=2, **FAST)
    straight = staged()
    before = snapshot(straight)
    seen = []

    class Watch(zoo.Callback):
        def on_epoch_end(self, history, record):
            seen.append(torch.equal(self.model.stem[0].weight, before["stem.0.weight"]))

    zoo.fit(straight, data, callbacks=[Watch()], **opts)
    assert seen == [True, False, False]  # frozen in epoch 1, training from epoch 2
    stopped = staged()
    hook = stopped.register_forward_pre_hook(signal_at(4))  # batch 4 of epoch 1, still frozen
    zoo.fit(stopped, data, checkpoint_dir=tmp_path, **opts)
    hook.remove()
    resumed = staged(seed=1)
    zoo.fit(resumed, data, checkpoint_dir=tmp_path, resume=True, **opts)
    assert states_equal(straight, resumed)


def test_freezing_n_stages_follows_group_matcher():
    from zoo.train.finetune import frozen_names

    model = staged()
    assert frozen_names(model, 1) == {"stem.0.weight", "stem.0.bias", "stem.1.weight", "stem.1.bias", "pos"}
    assert frozen_names(model, 2) == frozen_names(model, 1) | {
        n for n, _ in model.named_parameters() if "stages.0" in n
    }
    with pytest.raises(ValueError, match=r"has no group_matcher\(\)") as err:
        frozen_names(nn.Sequential(nn.Linear(2, 2)), 1)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"no parameter of Staged is under 'stm'.*did you mean.*stem"):
        frozen_names(model, ["stm"])
    with pytest.raises(ValueError, match="1..3"):
        frozen_names(model, 4)


def test_layer_lr_decay_and_weight_decay_match_timms_param_groups():
    timm_optim = pytest.importorskip("timm.optim")
    model = staged()
    opt = optim.make_optimizer("adamw", model, 1e-2, 0.05, layer_decay=0.5)
    ours = {id(p): (g["lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}
    reference = timm_optim.param_groups_layer_decay(
        model, weight_decay=0.05, no_weight_decay_list=model.no_weight_decay(), layer_decay=0.5
    )
    theirs = {id(p): (1e-2 * g["lr_scale"], g["weight_decay"]) for g in reference for p in g["params"]}
    assert ours == theirs and len(ours) == len(list(model.parameters()))
    # the stem is four groups below the head (stages.0.0, stages.0.1, stages.1.0, then the head)
    assert ours[id(model.pos)][1] == 0.0 and ours[id(model.stem[0].weight)] == (1e-2 * 0.5**4, 0.05)
    # without layer decay: the same weight decay split, one lr
    plain = optim.make_optimizer("adamw", model, 1e-2, 0.05)
    assert {id(p): g["weight_decay"] for g in plain.param_groups for p in g["params"]} == {
        k: v[1] for k, v in theirs.items()
    }


def test_layer_lr_decay_trains_and_cannot_change_on_resume(data, tmp_path):
    opts = dict(epochs=1, seed=0, checkpoint_dir=tmp_path, **FAST)
    history = zoo.fit(staged(), data, layer_lr_decay=0.5, **opts)
    assert history.config["layer_lr_decay"] == 0.5
    with pytest.raises(CheckpointError, match=r"layer_lr_decay \(0.5 -> 0.8\)"):
        zoo.fit(staged(), data, layer_lr_decay=0.8, resume=True, **{**opts, "epochs": 2})
    with pytest.raises(ValueError, match="named optimizer"):
        zoo.fit(staged(), data, layer_lr_decay=0.5, optimizer=lambda p: torch.optim.SGD(p, lr=0.1), **FAST)


def reference_one_cycle(lr, total):
    """torch's OneCycleLR on a lone group peaking at ``lr``: its lr before each of ``total`` steps."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_one_cycle_follows_each_groups_own_lr():
    model = staged()
    head = list(model.head.parameters())
    body = [p for p in model.parameters() if all(p is not h for h in head)]
    opt = torch.optim.AdamW([{"params": body, "lr": 1e-4}, {"params": head, "lr": 1e-3}])
    sched = optim.make_scheduler("onecycle", opt, 20)
    got = [[], []]
    for _ in range(20):
        for i, group in enumerate(opt.param_groups):
            got[i].append(group["lr"])
        opt.step()
        sched.step()
    assert got == [reference_one_cycle(1e-4, 20), reference_one_cycle(1e-3, 20)]


def test_fit_keeps_a_user_optimizers_group_lrs(data):
    model = staged()
    head = list(model.head.parameters())
    body = [p for p in model.parameters() if all(p is not h for h in head)]
    factory = lambda params: torch.optim.AdamW([{"params": body, "lr": 1e-4}, {"params": head, "lr": 1e-3}])  # noqa: E731
    history = zoo.fit(model, data, epochs=2, seed=0, optimizer=factory, **FAST)
    assert history.epochs[0]["lr"] == reference_one_cycle(1e-4, 18)[9]  # after 9 steps of 18 (9 per epoch)
