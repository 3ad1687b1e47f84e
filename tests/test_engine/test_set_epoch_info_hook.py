"""SetEpochInfoHook: sets the head's epoch through wrappers, refuses heads without one, and drives
TOOD from ATSS to task-aligned assignment in a real (tiny) training run."""
import uuid
from types import SimpleNamespace

import pytest
import torch.nn as nn
from mmengine.config import Config
from mmengine.runner import Runner

from fcosdet.engine.hooks import SetEpochInfoHook
from fcosdet.models.dense_heads import TOODHead
from fcosdet.models.task_modules import ATSSAssigner, TaskAlignedAssigner
from fcosdet.models.test_time_augs import DetTTAModel
from fcosdet.utils import register_all_modules

TOOD_TRAIN_CFG = dict(initial_epoch=1, initial_assigner=dict(type='ATSSAssigner', topk=9),
                      assigner=dict(type='TaskAlignedAssigner', topk=13), alpha=1, beta=6,
                      allowed_border=-1, pos_weight=-1, debug=False)


class FakeDetector(nn.Module):
    """Just a ``bbox_head`` (and the ``test_step`` a TTA wrapper asks for)."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.bbox_head = head

    def test_step(self, data: dict) -> list:
        return []


def detector_with(head: nn.Module) -> nn.Module:
    return FakeDetector(head)


def tiny_head() -> TOODHead:
    return TOODHead(num_classes=2, in_channels=8, feat_channels=8, stacked_convs=1,
                    norm_cfg=dict(type='GN', num_groups=2), train_cfg=TOOD_TRAIN_CFG)


def test_sets_the_epoch_of_the_head_also_inside_a_tta_model():
    register_all_modules()
    model = detector_with(tiny_head())
    hook = SetEpochInfoHook()
    hook.before_train_epoch(SimpleNamespace(model=model, epoch=3))
    assert model.bbox_head.epoch == 3
    hook.before_train_epoch(SimpleNamespace(model=DetTTAModel(module=model), epoch=5))
    assert model.bbox_head.epoch == 5


def test_a_head_without_epoch_is_refused():
    model = detector_with(nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match=r'bbox_head \(Conv2d\) has no epoch attribute'):
        SetEpochInfoHook().before_train_epoch(SimpleNamespace(model=model, epoch=0))


@pytest.mark.parametrize('with_hook', [False, True], ids=['message-hub', 'hook'])
def test_training_switches_to_task_aligned_assignment_after_initial_epoch(
        tiny_config, tmp_path, monkeypatch, with_hook):
    """The tiny FCOS config with a TOOD head, 2 epochs, initial_epoch 1: epoch 0 assigns with
    ATSS only, epoch 1 with the task-aligned assigner only, whether the head follows the
    runner's MessageHub (the shipped configs) or SetEpochInfoHook sets its epoch; validation
    predicts boxes."""
    register_all_modules()
    calls = []
    for cls in (ATSSAssigner, TaskAlignedAssigner):
        def spy(self, *args, _original=cls.assign, _name=cls.__name__, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(cls, 'assign', spy)
    cfg = Config.fromfile(tiny_config)
    cfg.model.type = 'TOOD'
    cfg.model.bbox_head = dict(type='TOODHead', num_classes=4, in_channels=32, feat_channels=32,
                               stacked_convs=2, norm_cfg=dict(type='GN', num_groups=8))
    cfg.model.train_cfg = TOOD_TRAIN_CFG
    if with_hook:
        cfg.custom_hooks = [*cfg.custom_hooks, dict(type='SetEpochInfoHook')]
    cfg.work_dir = str(tmp_path)
    # A fresh experiment name: mmengine reuses an existing MessageHub of the same name (another
    # tiny run started in the same second), which is then not the current instance the head reads.
    cfg.experiment_name = f'tood_switch_{uuid.uuid4().hex}'
    runner = Runner.from_cfg(cfg)
    runner.train()
    iters = runner.iter // 2
    assert iters > 0 and calls == ['ATSSAssigner'] * iters + ['TaskAlignedAssigner'] * iters
    assert runner.model.bbox_head.epoch == (1 if with_hook else None)
    metrics = runner.val()
    assert 'coco/bbox_mAP' in metrics
