"""Every shipped config that defines a model, slimmed to a tiny model of the same types, and a
tiny batch for it (shared by the precision and the distributed matrix tests).

Slimming keeps every type (detector, backbone, neck, head, losses, assigners, DCN settings) and
shrinks only widths, depths above 50 and tower depths, so a config's own code paths run.
"""
import copy
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

from fcosdet.registry import MODELS
from fcosdet.structures import DetDataSample

REPO = Path(__file__).resolve().parents[2]
MODEL_CONFIGS = sorted(p.relative_to(REPO / 'configs').as_posix()
                       for p in (REPO / 'configs').rglob('*.py')
                       if '_base_' not in p.parts and 'model' in Config.fromfile(p))
BASE_CHANNELS = 8
FEAT_CHANNELS = 16
IMG_SHAPE = (96, 128)  # (h, w)
PADDED_SHAPE = (128, 160)  # fixed-size padding of the batch (configs with BatchFixedSizePad)
# one config per detector type (TOOD in both assignment phases)
DETECTORS = {
    'FCOS': 'fcos/fcos_r18_fpn_gn-head_demo.py',
    'FCOS-DCN': 'fcos/fcos_r50-dcn_fpn_gn-head_demo.py',
    'ATSS': 'atss/atss_r18_fpn_demo.py',
    'GFL': 'gfl/gfl_r18_fpn_demo.py',
    'DDOD': 'ddod/ddod_r18_fpn_demo.py',
    'VFNet': 'vfnet/vfnet_r50_fpn_1x_coco.py',
    'TOOD-warm-up': 'tood/tood_r18_fpn_demo.py',
    'TOOD-aligned': 'tood/tood_r18_fpn_demo.py',
}
# (image boxes x1 y1 x2 y2, labels): several sizes, so that more than one level has positives
BOXES = (([[4.0, 6.0, 60.0, 90.0], [70.0, 10.0, 90.0, 30.0]], [1, 0]),
         ([[20.0, 8.0, 124.0, 70.0], [6.0, 60.0, 40.0, 92.0]], [2, 3]))


def _stage_channels(backbone: dict) -> list[int]:
    """Output channels of the backbone stages in ``out_indices`` (ResNet/ResNeXt)."""
    expansion = 1 if backbone['depth'] in (18, 34) else 4
    return [BASE_CHANNELS * 2**i * expansion for i in backbone.get('out_indices', (0, 1, 2, 3))]


def slim_model_cfg(model: dict) -> dict:
    """A copy of a config's ``model`` with 8 base channels (depth at most 50), a 16-channel
    neck and head (GN with 4 groups, at most 2 tower convs), fixed-size batch padding to
    :data:`PADDED_SHAPE` and nothing pretrained."""
    model = copy.deepcopy(model)
    for augment in model['data_preprocessor'].get('batch_augments') or []:
        if augment['type'] == 'BatchFixedSizePad':  # LSJ's 1024 x 1024: a padded tiny batch
            augment['size'] = PADDED_SHAPE
    backbone, neck, head = model['backbone'], model['neck'], model['bbox_head']
    backbone.update(base_channels=BASE_CHANNELS, depth=min(backbone['depth'], 50), init_cfg=None)
    if backbone['type'] == 'ResNeXt':
        backbone.update(groups=4, base_width=4)
    neck.update(in_channels=_stage_channels(backbone), out_channels=FEAT_CHANNELS)
    head.update(in_channels=FEAT_CHANNELS, feat_channels=FEAT_CHANNELS,
                norm_cfg=dict(type='GN', num_groups=4, requires_grad=True))
    if head.get('stacked_convs', 1) > 2:
        head['stacked_convs'] = 2
        head['num_dcn'] = min(head.get('num_dcn', 0), 2)
    if 'num_dcn' in head and head['num_dcn'] == 0:
        del head['num_dcn']
    return model


def build_slim_model(config: str, detector: str = '', seed: int = 0) -> torch.nn.Module:
    """The slimmed model of ``configs/<config>``, initialised with ``seed``; for the
    :data:`DETECTORS` name ``'TOOD-aligned'`` past TOOD's warm-up epochs."""
    cfg = Config.fromfile(REPO / 'configs' / config)
    torch.manual_seed(seed)
    model = MODELS.build(slim_model_cfg(cfg.model.to_dict()))
    model.init_weights()
    if detector == 'TOOD-aligned':
        model.bbox_head.epoch = model.bbox_head.initial_epoch  # task-aligned assignment
    return model


def tiny_batch(model: torch.nn.Module, with_boxes: bool = True, seed: int = 0) -> dict:
    """Two preprocessed ``IMG_SHAPE`` images with :data:`BOXES` (or none), training mode."""
    gen = torch.Generator().manual_seed(seed)
    samples, images = [], []
    for boxes, labels in BOXES:
        boxes, labels = (boxes, labels) if with_boxes else ([], [])
        sample = DetDataSample(metainfo=dict(img_shape=IMG_SHAPE, ori_shape=IMG_SHAPE,
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes).reshape(-1, 4),
                                           labels=torch.tensor(labels, dtype=torch.long))
        samples.append(sample)
        images.append(torch.randint(0, 256, (3, *IMG_SHAPE), generator=gen, dtype=torch.uint8))
    return model.data_preprocessor(dict(inputs=images, data_samples=samples), True)
