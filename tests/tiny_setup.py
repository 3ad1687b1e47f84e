"""The tiny dataset size and training config shared by the tests (see tests/conftest.py).

A plain module (not conftest) so test files can import from it by a unique name.
"""
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_NUM_TRAIN = 8
TINY_NUM_VAL = 5
TINY_IMG_SIZE = (96, 128)  # (h, w)

_TINY_CONFIG = """\
_base_ = ['{runtime}']

data_root = '{data_root}/'
classes = ('ellipse', 'rectangle', 'triangle', 'cross')

model = dict(
    type='FCOS',
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='ResNet', depth=18, base_channels=16, out_indices=(0, 1, 2, 3), frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch'),
    neck=dict(
        type='FPN', in_channels=[16, 32, 64, 128], out_channels=32, start_level=1,
        add_extra_convs='on_output', num_outs=5, relu_before_extra_convs=True),
    bbox_head=dict(
        type='FCOSHead', num_classes=4, in_channels=32, feat_channels=32, stacked_convs=1,
        strides=[8, 16, 32, 64, 128], norm_cfg=dict(type='GN', num_groups=8, requires_grad=True),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', loss_weight=1.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.5), max_per_img=20))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 96), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 96), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='CocoDataset', data_root=data_root, ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'), metainfo=dict(classes=classes),
        filter_cfg=dict(filter_empty_gt=True, min_size=4), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CocoDataset', data_root=data_root, ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'), metainfo=dict(classes=classes), test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric', ann_file=data_root + 'annotations/instances_val.json',
                     metric='bbox')
test_evaluator = val_evaluator

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001),
    paramwise_cfg=dict(bias_lr_mult=2.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=4),
    dict(type='MultiStepLR', begin=0, end=2, by_epoch=True, milestones=[1], gamma=0.1),
]
auto_scale_lr = dict(enable=False, base_batch_size=16)

default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=1, max_keep_ckpts=2))
log_processor = dict(window_size=1)
randomness = dict(seed=0)
"""


def write_tiny_config(path: Path, data_root: Path, extra: str = '') -> Path:
    """Write the tiny training config for ``data_root`` to ``path`` (plus ``extra`` lines)."""
    runtime = REPO_ROOT / 'configs' / '_base_' / 'default_runtime.py'
    text = _TINY_CONFIG.format(runtime=runtime.as_posix(), data_root=Path(data_root).as_posix())
    path.write_text(text + extra)
    return path


def randomise_bn_stats(module: torch.nn.Module, seed: int, mean_scale: float = 0.1) -> None:
    """Give every BatchNorm2d in ``module`` non-trivial running statistics (in place).

    Means are N(0, mean_scale^2), variances uniform in [0.5, 1.5), drawn in module order from a
    generator seeded with ``seed``, so BN folding and exported graphs have something to fold.
    """
    gen = torch.Generator().manual_seed(seed)
    for bn in module.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=gen) * mean_scale)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)


def fit_steps(model: torch.nn.Module, data: dict, steps: int = 40,
              lr: float = 3e-3) -> tuple[float, float]:
    """Train ``model`` on one preprocessed batch ``data`` for ``steps`` Adam steps (in place).

    Returns:
        tuple[float, float]: the summed loss of the first and of the last step.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        loss = sum(model(data['inputs'], data['data_samples'], mode='loss').values())
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return losses[0], losses[-1]
