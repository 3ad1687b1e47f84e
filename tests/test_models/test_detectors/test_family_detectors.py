"""ATSS, GFL and TOOD detectors (MMDetection's type names) through the detector's three modes
on a batch of two images of different sizes, one without boxes."""
import copy

import pytest
import torch
from mmengine.structures import InstanceData

from fcosdet.registry import MODELS
from fcosdet.structures import DetDataSample
from fcosdet.utils import register_all_modules

register_all_modules()
TINY = dict(
    backbone=dict(type='ResNet', depth=18, base_channels=8, out_indices=(1, 2, 3),
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True),
    neck=dict(type='FPN', in_channels=[16, 32, 64], out_channels=32, start_level=0,
              add_extra_convs='on_output', num_outs=5),
    train_cfg=dict(assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1,
                   pos_weight=-1, debug=False),
    test_cfg=dict(score_thr=0.0, nms_pre=100, max_per_img=10),
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[128.0] * 3, std=[64.0] * 3,
                           pad_size_divisor=32))
HEADS = {
    'ATSS': (dict(type='ATSSHead', num_classes=2, in_channels=32, feat_channels=32,
                  stacked_convs=1, norm_cfg=dict(type='GN', num_groups=8)),
             {'loss_cls', 'loss_bbox', 'loss_centerness'}, (2, 4, 1)),
    'GFL': (dict(type='GFLHead', num_classes=2, in_channels=32, feat_channels=32,
                 stacked_convs=1, norm_cfg=dict(type='GN', num_groups=8)),
            {'loss_cls', 'loss_bbox', 'loss_dfl'}, (2, 68)),
    'TOOD': (dict(type='TOODHead', num_classes=2, in_channels=32, feat_channels=32,
                  stacked_convs=2, norm_cfg=dict(type='GN', num_groups=8)),
             {'loss_cls', 'loss_bbox'}, (2, 4)),
}
# TOOD's train_cfg: ATSS warm-up in epoch 0 (the head's epoch stays 0 here)
TOOD_TRAIN_CFG = dict(initial_epoch=1, initial_assigner=dict(type='ATSSAssigner', topk=9),
                      assigner=dict(type='TaskAlignedAssigner', topk=13), alpha=1, beta=6,
                      allowed_border=-1, pos_weight=-1, debug=False)


def batch(model) -> dict:
    """A 64 x 64 image with one box and a 40 x 48 image without any."""
    samples, images = [], []
    for (h, w), boxes in (((64, 64), [[16.0, 20.0, 44.0, 48.0]]), ((40, 48), [])):
        images.append(torch.randint(0, 255, (3, h, w), dtype=torch.uint8))
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes).reshape(-1, 4),
                                           labels=torch.zeros(len(boxes), dtype=torch.long))
        samples.append(sample)
    return model.data_preprocessor(dict(inputs=images, data_samples=samples), True)


@pytest.mark.parametrize('detector', sorted(HEADS))
def test_modes(detector: str):
    head, loss_keys, channels = HEADS[detector]
    torch.manual_seed(0)
    cfg = dict(copy.deepcopy(TINY), type=detector, bbox_head=head)
    if detector == 'TOOD':
        cfg['train_cfg'] = TOOD_TRAIN_CFG
    model = MODELS.build(cfg)
    model.init_weights()
    assert type(model).__name__ == detector
    data = batch(model)
    outs = model(data['inputs'], mode='tensor')
    sizes = [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    assert [[tuple(m.shape) for m in maps] for maps in outs] == [
        [(2, c, *s) for s in sizes] for c in channels]
    losses = model(data['inputs'], data['data_samples'], mode='loss')
    assert set(losses) == loss_keys
    assert all(torch.isfinite(v) and v.item() > 0 for v in losses.values())
    model.eval()
    with torch.no_grad():
        results = model(data['inputs'], data['data_samples'], mode='predict')
    for result, (h, w) in zip(results, ((64, 64), (40, 48))):
        boxes = result.pred_instances.bboxes
        assert 1 <= len(boxes) <= 10  # score_thr 0: at least one, at most max_per_img
        if detector == 'TOOD':  # not clipped to the image, as MMDetection's TOOD
            continue
        assert (boxes >= 0).all() and (boxes[:, 0::2] <= w).all() and (boxes[:, 1::2] <= h).all()
