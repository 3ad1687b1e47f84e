"""The "contribute a new head" example of docs/contribute_head.md, run as a user would.

``projects/example_head`` holds ``LiteFCOSHead`` (FCOSHead with depthwise-separable tower convs)
and a config that inherits the demo config and selects the head through ``custom_imports``.
These tests build it from that config, train a few iterations with the Runner, reload the
checkpoint with ``init_detector`` and run ``inference_detector``, so the guide cannot rot.
"""
import copy
import importlib
import json
import math
from pathlib import Path
from types import ModuleType

import pytest
import torch
from mmcv.cnn import DepthwiseSeparableConvModule
from mmengine.config import Config
from mmengine.hooks import Hook
from tiny_setup import REPO_ROOT, TINY_IMG_SIZE, TINY_NUM_TRAIN, TINY_NUM_VAL

from fcosdet.apis import inference_detector, init_detector
from fcosdet.models.dense_heads import FCOSHead
from fcosdet.utils import register_all_modules
from fcosdet.utils.cli import build_runner

CONFIG = REPO_ROOT / 'projects/example_head/configs/fcos_lite-head_r18_fpn_demo.py'
NUM_CLASSES = 4


@pytest.fixture
def lite_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The example module, imported the way ``custom_imports`` does (repo root on sys.path)."""
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    register_all_modules()
    return importlib.import_module('projects.example_head.lite_fcos_head')


def tiny_overrides(data_root: Path, work_dir: Path) -> dict:
    """``--cfg-options``-style overrides: tiny data, tiny images, one epoch of 4 iterations."""
    root = f'{data_root.as_posix()}/'
    h, w = TINY_IMG_SIZE
    demo_cfg = dict(num_train=TINY_NUM_TRAIN, num_val=TINY_NUM_VAL, img_size=TINY_IMG_SIZE,
                    seed=0)
    options: dict = {
        'work_dir': str(work_dir),
        'train_cfg.max_epochs': 1,
        'train_cfg.val_interval': 1,
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': 1,
        'default_hooks.visualization.draw': False,
        'train_dataloader.dataset.pipeline.2.scale': (w, h),
    }
    for split in ('train', 'val', 'test'):
        options.update({
            f'{split}_dataloader.batch_size': 2,
            f'{split}_dataloader.num_workers': 0,
            f'{split}_dataloader.persistent_workers': False,
            f'{split}_dataloader.dataset.data_root': root,
            f'{split}_dataloader.dataset.demo_cfg': demo_cfg,
        })
    for split in ('val', 'test'):
        options[f'{split}_dataloader.dataset.pipeline.1.scale'] = (w, h)
        options[f'{split}_evaluator.ann_file'] = f'{root}annotations/instances_val.json'
    return options


class RecordHook(Hook):
    """Keeps the head's weights before the first iteration and every iteration's losses."""

    def __init__(self) -> None:
        self.weights_before: dict[str, torch.Tensor] = {}
        self.losses: list[dict[str, float]] = []

    def before_train(self, runner) -> None:  # after weight init, before any update
        self.weights_before = copy.deepcopy(runner.model.bbox_head.state_dict())

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.losses.append({k: v.item() for k, v in outputs.items()})


def test_lite_head_replaces_tower_convs(lite_module: ModuleType) -> None:
    """Tower convs are depthwise 3x3 + pointwise 1x1; weight count and outputs as FCOSHead."""
    in_ch, feat, convs = 16, 24, 2
    kwargs = dict(num_classes=NUM_CLASSES, in_channels=in_ch, feat_channels=feat,
                  stacked_convs=convs, strides=(8, 16), regress_ranges=((-1, 64), (64, 1e8)),
                  norm_cfg=dict(type='GN', num_groups=8, requires_grad=True))
    lite, plain = lite_module.LiteFCOSHead(**kwargs), FCOSHead(**kwargs)
    assert isinstance(lite, FCOSHead)

    for tower in (lite.cls_convs, lite.reg_convs):
        assert len(tower) == convs
        assert all(isinstance(m, DepthwiseSeparableConvModule) for m in tower)
        assert tower[0].depthwise_conv.conv.groups == in_ch
        assert tower[1].depthwise_conv.conv.groups == feat
        assert tower[1].pointwise_conv.conv.kernel_size == (1, 1)

    def tower_weights(head: FCOSHead) -> int:
        return sum(p.numel() for p in head.cls_convs.parameters())

    # Convs have no bias (a norm follows); GroupNorm has a weight and a bias per channel.
    # Depthwise-separable: 9*Cin + 2*Cin (dw + GN) + Cin*F + 2*F (pw + GN) per layer.
    expected_lite = (9 * in_ch + 2 * in_ch + in_ch * feat + 2 * feat
                     + 9 * feat + 2 * feat + feat * feat + 2 * feat)
    expected_plain = 9 * in_ch * feat + 2 * feat + 9 * feat * feat + 2 * feat
    assert tower_weights(lite) == expected_lite == 1496
    assert tower_weights(plain) == expected_plain == 8736

    feats = (torch.randn(2, in_ch, 8, 10), torch.randn(2, in_ch, 4, 5))
    for lite_out, plain_out in zip(lite(feats), plain(feats)):
        assert [t.shape for t in lite_out] == [t.shape for t in plain_out]
    assert lite(feats)[0][0].shape == (2, NUM_CLASSES, 8, 10)


def test_config_selects_lite_head_via_custom_imports(lite_module: ModuleType) -> None:
    """The project config keeps the demo's head settings and only swaps the head type."""
    cfg = Config.fromfile(str(CONFIG))
    demo = Config.fromfile(str(REPO_ROOT / 'configs/fcos/fcos_r18_fpn_gn-head_demo.py'))
    assert cfg.custom_imports == dict(imports=['projects.example_head.lite_fcos_head'],
                                      allow_failed_imports=False)
    assert cfg.model.bbox_head.type == 'LiteFCOSHead'
    head, demo_head = cfg.model.bbox_head.to_dict(), demo.model.bbox_head.to_dict()
    head.pop('type'), demo_head.pop('type')
    assert head == demo_head


def test_lite_head_trains_and_predicts(lite_module: ModuleType, tiny_data_root: Path,
                                       tmp_path: Path) -> None:
    """Runner training (4 iterations + COCO validation), then checkpoint -> inference."""
    options = tiny_overrides(tiny_data_root, tmp_path / 'work')
    cfg = Config.fromfile(str(CONFIG))
    cfg.merge_from_dict(options)
    runner = build_runner(cfg)
    record = RecordHook()
    runner.register_hook(record)
    runner.train()

    head = runner.model.bbox_head
    assert type(head) is lite_module.LiteFCOSHead
    assert len(record.losses) == math.ceil(TINY_NUM_TRAIN / 2)
    for losses in record.losses:
        assert set(losses) >= {'loss', 'loss_cls', 'loss_bbox', 'loss_centerness'}
        assert all(math.isfinite(v) for v in losses.values()), losses
        assert losses['loss'] > 0
    after = head.state_dict()
    for name in ('cls_convs.0.depthwise_conv.conv.weight', 'reg_convs.1.pointwise_conv.conv.weight',
                 'conv_cls.weight', 'conv_reg.weight'):
        assert not torch.equal(record.weights_before[name], after[name]), name

    scalars = runner.message_hub.log_scalars
    assert 0.0 <= scalars['val/coco/bbox_mAP'].current() <= 1.0

    # A user's path: build from the config file and the checkpoint, detect in one image.
    checkpoint = tmp_path / 'work' / 'epoch_1.pth'
    # score_thr 0: after 4 iterations few class probabilities pass the usual 0.05, and the
    # checks below need detections to look at
    model = init_detector(str(CONFIG), str(checkpoint),
                          cfg_options={**options, 'model.test_cfg.score_thr': 0.0},
                          fast_path=False)  # compare with the checkpoint's own tensors
    assert type(model.bbox_head) is lite_module.LiteFCOSHead
    loaded = model.state_dict()
    for name, value in runner.model.state_dict().items():
        assert torch.equal(loaded[name], value), name

    images = json.loads((tiny_data_root / 'annotations/instances_val.json').read_text())['images']
    image = images[0]
    result = inference_detector(model, str(tiny_data_root / 'val' / image['file_name']))
    pred = result.pred_instances
    num = pred.bboxes.shape[0]
    assert pred.bboxes.shape == (num, 4) and pred.scores.shape == (num,)
    assert pred.labels.shape == (num,) and pred.labels.dtype == torch.long
    assert num == cfg.model.test_cfg.max_per_img
    assert ((pred.labels >= 0) & (pred.labels < NUM_CLASSES)).all()
    assert ((pred.scores > 0) & (pred.scores <= 1)).all()
    assert (pred.scores[:-1] >= pred.scores[1:]).all()
    # boxes are in original-image pixels, clipped to the image
    assert (pred.bboxes[:, 2:] >= pred.bboxes[:, :2]).all()
    assert (pred.bboxes[:, [0, 2]] <= image['width']).all()
    assert (pred.bboxes[:, [1, 3]] <= image['height']).all()
    assert (pred.bboxes >= 0).all()
