"""Every config in configs/ loads and builds its model and pipelines; the published variants
follow the FCOS recipe. (State-dict layouts: tests/test_models/test_state_dict.py.)"""
from pathlib import Path

import pytest
from mmengine.config import Config

from fcosdet.registry import MODELS, TRANSFORMS
from fcosdet.utils import register_all_modules

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (REPO / 'configs').rglob('*.py') if '_base_' not in p.parts)
PUBLISHED = {  # config -> COCO val2017 box AP of MMDetection's model zoo
    'fcos_r50-caffe_fpn_gn-head_1x_coco.py': '36.6',
    'fcos_r50-caffe_fpn_gn-head-center-normbbox-centeronreg-giou_1x_coco.py': '38.7',
    'fcos_r101-caffe_fpn_gn-head-1x_coco.py': '39.1',
    'fcos_r50-caffe_fpn_gn-head_ms-640-800-2x_coco.py': '38.5',
    'fcos_r101-caffe_fpn_gn-head_ms-640-800-2x_coco.py': '40.8',
    'fcos_x101-64x4d_fpn_gn-head_ms-640-800-2x_coco.py': '42.6',
}


def _drop_pretrained(node: object) -> object:
    """A copy of a config node without ``init_cfg`` entries (nothing is downloaded)."""
    if isinstance(node, dict):
        return {k: _drop_pretrained(v) for k, v in node.items() if k != 'init_cfg'}
    if isinstance(node, list):
        return [_drop_pretrained(v) for v in node]
    return node


@pytest.fixture(scope='module', autouse=True)
def _registered() -> None:
    register_all_modules(init_default_scope=True)


def test_every_published_variant_has_a_config():
    names = {p.name for p in CONFIGS}
    assert set(PUBLISHED) <= names
    assert {'fcos_r50-caffe_fpn_gn-head-center_1x_coco.py', 'fcos_r18_fpn_gn-head_1x_coco.py',
            'fcos_r50_fpn_gn-head_1x_coco.py'} <= names


@pytest.mark.parametrize('path', CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_loads_and_builds(path: Path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'fcosdet'
    model = MODELS.build(_drop_pretrained(cfg.model.to_dict()))
    assert model.bbox_head.num_classes == cfg.model.bbox_head.num_classes
    train_dataset = cfg.train_dataloader.dataset
    while 'dataset' in train_dataset:  # wrappers such as RepeatDataset
        train_dataset = train_dataset.dataset
    for transform in train_dataset.pipeline + cfg.test_dataloader.dataset.pipeline:
        TRANSFORMS.build(transform)  # every pipeline step exists and accepts its arguments


@pytest.mark.parametrize('name', sorted(PUBLISHED))
def test_published_recipes(name: str):
    cfg = Config.fromfile(REPO / 'configs' / 'fcos' / name)
    optim = cfg.optim_wrapper
    assert optim.optimizer == dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001)
    assert optim.paramwise_cfg == dict(bias_lr_mult=2.0, bias_decay_mult=0.0)
    warmup, steps = cfg.param_scheduler
    if 'giou' in name:  # all improvements: linear warm-up, no clipping (as in MMDetection)
        assert optim.clip_grad is None
        assert (warmup.type, warmup.start_factor, warmup.end) == ('LinearLR', 1.0 / 3, 500)
    else:
        assert optim.clip_grad == dict(max_norm=35, norm_type=2)
        assert (warmup.type, warmup.factor, warmup.end) == ('ConstantLR', 1.0 / 3, 500)
    two_x = '2x' in name
    assert cfg.train_cfg.max_epochs == (24 if two_x else 12)
    assert steps.milestones == ([16, 22] if two_x else [8, 11])
    assert cfg.default_hooks.checkpoint.save_best == 'coco/bbox_mAP'
    assert cfg.val_evaluator.type == 'CocoMetric'
    resize = cfg.train_dataloader.dataset.pipeline[2]
    if 'ms-640-800' in name:
        assert resize.scales == [(1333, 640), (1333, 800)]
    else:
        assert resize.scale == (1333, 800)
    preprocessor = cfg.model.data_preprocessor
    if 'x101' in name:  # pytorch-style ImageNet backbone: RGB, ImageNet statistics
        assert preprocessor.bgr_to_rgb and preprocessor.std == [58.395, 57.12, 57.375]
    else:  # caffe backbone: BGR, std 1
        assert not preprocessor.bgr_to_rgb and preprocessor.std == [1.0, 1.0, 1.0]
        assert cfg.model.backbone.style == 'caffe'


def test_all_improvements_config():
    cfg = Config.fromfile(REPO / 'configs' / 'fcos' /
                          'fcos_r50-caffe_fpn_gn-head-center-normbbox-centeronreg-giou_1x_coco.py')
    head = cfg.model.bbox_head
    assert head.center_sampling and head.norm_on_bbox and head.centerness_on_reg
    assert head.loss_bbox.type == 'GIoULoss'
    assert cfg.model.test_cfg.nms.iou_threshold == 0.6
    plain = Config.fromfile(REPO / 'configs' / 'fcos' / 'fcos_r50-caffe_fpn_gn-head_1x_coco.py')
    assert plain.model.test_cfg.nms.iou_threshold == 0.5
    assert not plain.model.bbox_head.get('center_sampling', False)


def test_readme_tables_every_config_with_its_published_ap():
    readme = (REPO / 'configs' / 'fcos' / 'README.md').read_text()
    for name, ap in PUBLISHED.items():
        rows = [line for line in readme.splitlines() if name[:-3] in line and '|' in line]
        assert rows and ap in rows[0], name
    assert 'not yet reproduced' in readme
