"""A tiny FCOS (8-channel ResNet-18, 3 classes) as a config file, a checkpoint and its ONNX file."""
import pytest
import torch
from mmengine.config import Config
from tiny_setup import randomise_bn_stats

TINY_CONFIG = """
default_scope = 'fcosdet'
model = dict(
    type='FCOS',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='ResNet', depth=18, base_channels=8, out_indices=(1, 2, 3),
                  norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True),
    neck=dict(type='FPN', in_channels=[16, 32, 64], out_channels=16, start_level=0,
              add_extra_convs='on_output', num_outs=5, relu_before_extra_convs=True),
    bbox_head=dict(type='FCOSHead', num_classes=3, in_channels=16, feat_channels=16,
                   stacked_convs=2, norm_on_bbox=True, centerness_on_reg=True,
                   norm_cfg=dict(type='GN', num_groups=4, requires_grad=True)),
    test_cfg=dict(nms_pre=200, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.6), max_per_img=40))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(96, 64), keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
test_dataloader = dict(
    batch_size=2,
    dataset=dict(type='CocoDataset', data_root='data/none', ann_file='none.json',
                 metainfo=dict(classes=('a', 'b', 'c')), test_mode=True,
                 pipeline=test_pipeline))
"""


@pytest.fixture(scope='module')
def tiny_files(tmp_path_factory):
    """(config path, checkpoint path) of a tiny FCOS with non-trivial BN statistics.

    The class bias is 0 (probability about 0.5), so random weights give many detections.
    """
    from fcosdet.apis import init_detector

    folder = tmp_path_factory.mktemp('tiny_fcos')
    config = folder / 'tiny_fcos.py'
    config.write_text(TINY_CONFIG)
    torch.manual_seed(0)
    model = init_detector(Config.fromfile(str(config)))
    randomise_bn_stats(model, seed=1)
    torch.nn.init.zeros_(model.bbox_head.conv_cls.bias)
    checkpoint = folder / 'tiny_fcos.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=('a', 'b', 'c')))), checkpoint)
    return str(config), str(checkpoint)


@pytest.fixture(scope='module')
def dynamic_onnx(tiny_files, tmp_path_factory):
    """ONNX file of the ``tiny_files`` model with dynamic N, H and W."""
    from fcosdet.apis import init_detector
    from fcosdet.deployment import export_onnx

    config, checkpoint = tiny_files
    path = tmp_path_factory.mktemp('onnx') / 'tiny_dynamic.onnx'
    return export_onnx(init_detector(config, checkpoint), str(path), shape=(64, 96),
                       dynamic=True)


@pytest.fixture(scope='module')
def exported_end2end(tiny_files, tmp_path_factory):
    """The ``tiny_files`` model exported end to end (dynamic N, H, W)."""
    from fcosdet.apis import init_detector
    from fcosdet.deployment import export_end2end

    model = init_detector(*tiny_files, fast_path=False)
    return export_end2end(model, str(tmp_path_factory.mktemp('e2e') / 'fcos.onnx'),
                          shape=(64, 96))
