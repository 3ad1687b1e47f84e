"""The backbone and neck of the FCOS configs carry exactly MMDetection 3.x state-dict entries."""
from pathlib import Path

import pytest
from torch import nn

from fcosdet.registry import MODELS

# <repo>/tests/test_models/test_backbones/this_file -> <repo>/../shared/reference
REFERENCE_DIR = Path(__file__).resolve().parents[3].parent / 'shared' / 'reference'

FCOS_FPN = dict(type='FPN', in_channels=[256, 512, 1024, 2048], out_channels=256, start_level=1,
                add_extra_convs='on_output', num_outs=5, relu_before_extra_convs=True)


def read_reference(file_name: str) -> list[tuple[str, str, str]]:
    """(name, shape, dtype) rows of the backbone.* and neck.* entries of a reference list."""
    path = REFERENCE_DIR / file_name
    assert path.is_file(), f'reference state-dict list {path} is missing (shared/ must sit ' \
                           f'beside the repository)'
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith('#') or not line.strip():
            continue
        name, shape, dtype = line.split('\t')
        if name.startswith(('backbone.', 'neck.')):
            rows.append((name, shape, dtype))
    return rows


def state_dict_rows(model: nn.Module) -> list[tuple[str, str, str]]:
    """(name, shape, dtype) rows formatted like the reference files."""
    return [(name, str(tuple(t.shape)), str(t.dtype).removeprefix('torch.'))
            for name, t in model.state_dict().items()]


@pytest.mark.parametrize('file_name, backbone', [
    ('fcos_r50-caffe_fpn_gn-head_state_dict.txt',
     dict(type='ResNet', depth=50, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1,
          norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True, style='caffe')),
    ('fcos_r50-caffe_fpn_gn-head_1x_coco.state_dict.txt',
     dict(type='ResNet', depth=50, frozen_stages=1,
          norm_cfg=dict(type='BN', requires_grad=False), style='caffe')),
    ('fcos_x101-64x4d_fpn_gn-head_state_dict.txt',
     dict(type='ResNeXt', depth=101, groups=64, base_width=4, num_stages=4,
          out_indices=(0, 1, 2, 3), frozen_stages=1,
          norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True, style='pytorch')),
])
def test_backbone_and_neck_match_reference(file_name: str, backbone: dict) -> None:
    expected = read_reference(file_name)
    model = nn.Module()
    model.backbone = MODELS.build(backbone)
    model.neck = MODELS.build(FCOS_FPN)
    got = state_dict_rows(model)
    assert len(got) == len(expected)
    assert set(got) == set(expected), sorted(set(got) ^ set(expected))[:10]
    assert got == expected  # same order too


def test_builders_do_not_mutate_configs() -> None:
    backbone = dict(type='ResNet', depth=18, norm_cfg=dict(type='BN', requires_grad=False))
    neck = dict(FCOS_FPN, in_channels=[64, 128, 256, 512], upsample_cfg=dict(mode='nearest'))
    backbone_copy = {k: (dict(v) if isinstance(v, dict) else v) for k, v in backbone.items()}
    neck_copy = {k: (dict(v) if isinstance(v, dict) else v) for k, v in neck.items()}
    MODELS.build(backbone)
    MODELS.build(neck)
    assert backbone == backbone_copy
    assert neck == neck_copy
