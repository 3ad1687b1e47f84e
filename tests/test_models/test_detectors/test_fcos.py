"""FCOS detector: forward modes, config plumbing, and overfitting one synthetic image."""
import copy

import pytest
import torch
from mmengine.structures import InstanceData
from tiny_setup import fit_steps

from fcosdet.registry import MODELS
from fcosdet.structures import DetDataSample
from fcosdet.structures.bbox import bbox_overlaps

BOX = [16.0, 20.0, 44.0, 48.0]
TINY = dict(
    type='FCOS',
    backbone=dict(type='ResNet', depth=18, base_channels=8, out_indices=(1, 2, 3),
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True),
    neck=dict(type='FPN', in_channels=[16, 32, 64], out_channels=32, start_level=0,
              add_extra_convs='on_output', num_outs=5, relu_before_extra_convs=True),
    bbox_head=dict(type='FCOSHead', num_classes=1, in_channels=32, feat_channels=32,
                   stacked_convs=1, norm_cfg=dict(type='GN', num_groups=8)),
    test_cfg=dict(score_thr=0.05, nms_pre=100, max_per_img=10),
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[128.0] * 3, std=[64.0] * 3))


def build_tiny(**overrides):
    torch.manual_seed(0)
    cfg = copy.deepcopy(TINY)
    cfg.update(overrides)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def synthetic_batch(model, scale_factor=(1.0, 1.0)) -> dict:
    """One 64x64 dark image with a bright rectangle at BOX, already preprocessed."""
    img = torch.full((3, 64, 64), 30, dtype=torch.uint8)
    img[:, 20:48, 16:44] = 220
    sample = DetDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64),
                                         scale_factor=scale_factor))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([BOX]), labels=torch.tensor([0]))
    return model.data_preprocessor(dict(inputs=[img], data_samples=[sample]), True)


def test_tensor_loss_and_invalid_modes():
    model = build_tiny()
    data = synthetic_batch(model)
    cls, box, ctr = model(data['inputs'], mode='tensor')
    sizes = [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    assert [tuple(c.shape) for c in cls] == [(1, 1, *s) for s in sizes]
    assert [tuple(b.shape) for b in box] == [(1, 4, *s) for s in sizes]
    assert [tuple(c.shape) for c in ctr] == [(1, 1, *s) for s in sizes]
    losses = model(data['inputs'], data['data_samples'], mode='loss')
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_centerness'}
    assert all(torch.isfinite(v) and v.item() > 0 for v in losses.values())
    with pytest.raises(ValueError, match="'train'"):
        model(data['inputs'], data['data_samples'], mode='train')
    with pytest.raises(ValueError, match='data_samples'):
        model(data['inputs'], None, mode='loss')


def test_test_cfg_reaches_the_head_and_configs_are_not_mutated():
    cfg = copy.deepcopy(TINY)
    model = MODELS.build(cfg)
    assert cfg == TINY
    assert model.bbox_head.test_cfg['score_thr'] == 0.05
    assert model.bbox_head.test_cfg['nms_pre'] == 100
    assert model.bbox_head.test_cfg['max_per_img'] == 10
    assert model.bbox_head.test_cfg['nms'] == dict(type='nms', iou_threshold=0.5)
    assert type(model.data_preprocessor).__name__ == 'DetDataPreprocessor'


def test_overfits_one_image_and_predict_rescales():
    model = build_tiny()
    data = synthetic_batch(model)
    first, last = fit_steps(model, data, steps=40)
    assert last < 0.5 * first

    model.eval()
    with torch.no_grad():
        samples = model(data['inputs'], data['data_samples'], mode='predict')
    pred = samples[0].pred_instances
    assert pred.labels[0].item() == 0 and pred.scores[0].item() > 0.3
    assert torch.all(pred.scores[:-1] >= pred.scores[1:])
    assert bbox_overlaps(pred.bboxes[:1], torch.tensor([BOX])).item() > 0.7

    # Same image described as resized by (2, 0.5): boxes come back divided by (2, 0.5, 2, 0.5).
    scaled = synthetic_batch(model, scale_factor=(2.0, 0.5))
    with torch.no_grad():
        rescaled = model.predict(scaled['inputs'], scaled['data_samples'], rescale=True)
    torch.testing.assert_close(rescaled[0].pred_instances.bboxes[0],
                               pred.bboxes[0] / torch.tensor([2.0, 0.5, 2.0, 0.5]))
