"""A tiny FCOS config (3 classes, 8-channel ResNet-18, fixed-size test Resize) for API tests."""
import pytest

TINY_CONFIG = """
default_scope = 'fcosdet'
model = dict(
    type='FCOS',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[0.0, 0.0, 0.0],
                           std=[255.0, 255.0, 255.0], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='ResNet', depth=18, base_channels=8, out_indices=(1, 2, 3),
                  init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
    neck=dict(type='FPN', in_channels=[16, 32, 64], out_channels=16, start_level=0,
              add_extra_convs='on_output', num_outs=5, relu_before_extra_convs=True),
    bbox_head=dict(type='FCOSHead', num_classes=3, in_channels=16, feat_channels=16,
                   stacked_convs=1, norm_cfg=dict(type='GN', num_groups=4, requires_grad=True)),
    test_cfg=dict(nms_pre=50, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.5), max_per_img=20))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(180, 80), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
test_dataloader = dict(
    batch_size=1,
    dataset=dict(type='CocoDataset', data_root='data/none', ann_file='none.json',
                 metainfo=dict(classes=('a', 'b', 'c')), test_mode=True,
                 pipeline=test_pipeline))
"""


@pytest.fixture
def api_config(tmp_path):
    """Path of the tiny config file."""
    path = tmp_path / 'tiny_fcos.py'
    path.write_text(TINY_CONFIG)
    return str(path)
