"""FCOS-family detectors built from the shipped configs have exactly MMDetection 3.x state-dict
entries (name, shape, dtype, order), so its model-zoo checkpoints load without conversion."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from fcosdet.registry import MODELS
from fcosdet.utils import register_all_modules

REPO = Path(__file__).resolve().parents[2]
# CI clones the repository with shared/ beside it.
REFERENCE_DIR = REPO.parent / 'shared' / 'reference'

CASES = {  # config under configs/ -> reference list
    'fcos/fcos_r50-caffe_fpn_gn-head-center-normbbox-centeronreg-giou_1x_coco.py':
        'fcos_r50-caffe_fpn_gn-head_state_dict.txt',
    'fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py':
        'fcos_r50-caffe_fpn_gn-head_1x_coco.state_dict.txt',
    'fcos/fcos_x101-64x4d_fpn_gn-head_ms-640-800-2x_coco.py':
        'fcos_x101-64x4d_fpn_gn-head_state_dict.txt',
    'atss/atss_r50_fpn_1x_coco.py': 'atss_r50_fpn_1x_coco_state_dict.txt',
    'gfl/gfl_r50_fpn_1x_coco.py': 'gfl_r50_fpn_1x_coco_state_dict.txt',
    # the multi-scale 2x config trains the same model
    'gfl/gfl_r50_fpn_ms-2x_coco.py': 'gfl_r50_fpn_1x_coco_state_dict.txt',
    'ddod/ddod_r50_fpn_1x_coco.py': 'ddod_r50_fpn_1x_coco_state_dict.txt',
    'tood/tood_r50_fpn_1x_coco.py': 'tood_r50_fpn_1x_coco_state_dict.txt',
}
# FCOS with DCNv2 in ResNet stages 2-4 and on the last tower convs.
DCN_CASES = {
    'fcos/fcos_r50-dcn-caffe_fpn_gn-head-center-normbbox-centeronreg-giou_1x_coco.py':
        'fcos_r50-dcn-caffe_fpn_gn-head-center-normbbox-centeronreg-giou_1x_coco_state_dict.txt',
}
# VarifocalNet (star-shaped deformable refinement).
VFNET_CASES = {'vfnet/vfnet_r50_fpn_1x_coco.py': 'vfnet_r50_fpn_1x_coco_state_dict.txt'}


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


@pytest.mark.parametrize('config', sorted(CASES))
def test_state_dict_matches_mmdetection(config: str):
    check_state_dict(config, CASES[config])


@pytest.mark.parametrize('config', sorted(DCN_CASES))
def test_dcn_state_dict_matches_mmdetection(config: str):
    check_state_dict(config, DCN_CASES[config])


@pytest.mark.parametrize('config', sorted(VFNET_CASES))
def test_vfnet_state_dict_matches_mmdetection(config: str):
    check_state_dict(config, VFNET_CASES[config])


def check_state_dict(config: str, reference: str) -> None:
    """Build ``configs/<config>`` on the meta device and compare with ``reference``."""
    register_all_modules()
    model_cfg = Config.fromfile(REPO / 'configs' / config).model.to_dict()
    model_cfg['backbone'].pop('init_cfg', None)  # nothing is downloaded
    with torch.device('meta'):  # shapes only: skip allocating and initialising the weights
        model = MODELS.build(model_cfg)
    expected = read_reference(reference)
    ours = [(key, tuple(value.shape), str(value.dtype).replace('torch.', ''))
            for key, value in model.state_dict().items()]
    missing = [e for e in expected if e not in set(ours)]
    unexpected = [e for e in ours if e not in set(expected)]
    assert (missing, unexpected) == ([], [])
    assert ours == expected  # same entries in the same order
