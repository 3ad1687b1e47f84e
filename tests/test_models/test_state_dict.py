"""Whole FCOS detectors have exactly MMDetection 3.x state-dict entries (name, shape, dtype)."""
import copy
from pathlib import Path

import pytest
import torch

from fcosdet.registry import MODELS

REFERENCE_DIR = Path(__file__).resolve().parents[2].parent / 'shared' / 'reference'

CAFFE_R50 = dict(type='ResNet', depth=50, num_stages=4, out_indices=(0, 1, 2, 3),
                 frozen_stages=1, norm_cfg=dict(type='BN', requires_grad=False),
                 norm_eval=True, style='caffe')
X101_64X4D = dict(type='ResNeXt', depth=101, groups=64, base_width=4, num_stages=4,
                  out_indices=(0, 1, 2, 3), frozen_stages=1,
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True, style='pytorch')
NECK = dict(type='FPN', in_channels=[256, 512, 1024, 2048], out_channels=256, start_level=1,
            add_extra_convs='on_output', num_outs=5, relu_before_extra_convs=True)
HEAD = dict(type='FCOSHead', num_classes=80, in_channels=256, stacked_convs=4,
            feat_channels=256, strides=[8, 16, 32, 64, 128])
IMPROVED_HEAD = dict(HEAD, norm_on_bbox=True, centerness_on_reg=True, center_sampling=True,
                     conv_bias=True, loss_bbox=dict(type='GIoULoss', loss_weight=1.0))
CAFFE_PREPROCESSOR = dict(type='DetDataPreprocessor', mean=[102.9801, 115.9465, 122.7717],
                          std=[1.0, 1.0, 1.0], bgr_to_rgb=False, pad_size_divisor=32)
TEST_CFG = dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)

CASES = {
    'fcos_r50-caffe_fpn_gn-head_state_dict.txt': (CAFFE_R50, IMPROVED_HEAD),
    'fcos_r50-caffe_fpn_gn-head_1x_coco.state_dict.txt': (CAFFE_R50, HEAD),
    'fcos_x101-64x4d_fpn_gn-head_state_dict.txt': (X101_64X4D, HEAD),
}


def read_reference(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    """Entries of a reference list: ``name<TAB>(shape)<TAB>dtype``, '#' lines are comments."""
    path = REFERENCE_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f'state-dict reference {path} is missing; the repository must '
                                f'be checked out with shared/ beside it')
    entries = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith('#'):
            continue
        key, shape, dtype = line.split('\t')
        dims = shape.strip('()').replace(' ', '').split(',')
        entries.append((key, tuple(int(d) for d in dims if d), dtype))
    return entries


@pytest.mark.parametrize('reference', sorted(CASES))
def test_state_dict_matches_mmdetection(reference):
    backbone, head = CASES[reference]
    cfg = dict(type='FCOS', backbone=backbone, neck=NECK, bbox_head=head, test_cfg=TEST_CFG,
               data_preprocessor=CAFFE_PREPROCESSOR)
    before = copy.deepcopy(cfg)
    with torch.device('meta'):  # shapes only: skip allocating and initialising the weights
        model = MODELS.build(cfg)
    assert cfg == before
    expected = read_reference(reference)
    ours = [(key, tuple(value.shape), str(value.dtype).replace('torch.', ''))
            for key, value in model.state_dict().items()]
    missing = [e for e in expected if e not in set(ours)]
    unexpected = [e for e in ours if e not in set(expected)]
    assert (missing, unexpected) == ([], [])
    assert ours == expected  # same entries in the same order
