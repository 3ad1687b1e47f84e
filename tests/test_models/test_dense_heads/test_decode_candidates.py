"""The explicit decode step of the dense heads: named prediction maps, shared decoding."""
import math

import pytest
import torch

from fcosdet.models.dense_heads import ATSSHead, DDODHead, GFLHead, TOODHead
from fcosdet.models.dense_heads.dense_postprocess import (
    DENSE_TEST_CFG,
    PredictionMaps,
    capped_size,
    decode_deltas_with_quality,
    dense_candidates,
)
from fcosdet.registry import TASK_UTILS
from fcosdet.utils import register_all_modules

register_all_modules()
SMALL = dict(num_classes=2, in_channels=4, feat_channels=16, stacked_convs=1,
             norm_cfg=dict(type='GN', num_groups=4))


def test_decode_deltas_with_quality_by_hand():
    coder = TASK_UTILS.build(dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                                  target_stds=[0.1, 0.1, 0.2, 0.2]))
    anchors = torch.tensor([[[0., 0., 10., 10.], [20., 20., 40., 30.]]])  # [1, 2, 4]
    # dx = 1 -> shift 0.1 * 10 = 1 px right; dw = ln(2) / 0.2 doubles the width of anchor 2
    deltas = torch.tensor([[[1., 0., 0., 0.], [0., 0., math.log(2) / 0.2, 0.]]])
    quality = torch.tensor([[[0.0], [math.log(3)]]])  # sigmoid: 0.5 and 0.75
    boxes, scores = decode_deltas_with_quality(coder, torch.tensor([[0.8, 0.4]]), quality,
                                               anchors, deltas, torch.tensor([[25., 45.]]))
    # box 1 [1, 0, 11, 10] clipped to w = 45 stays; box 2 [10, 20, 50, 30] -> x2 45, y2 25
    torch.testing.assert_close(boxes, torch.tensor([[[1., 0., 11., 10.], [10., 20., 45., 25.]]]))
    torch.testing.assert_close(scores, torch.tensor([[0.4, 0.3]]))


def test_atss_and_ddod_share_the_decoding_under_their_own_names():
    atss, ddod = ATSSHead(**SMALL), DDODHead(**SMALL, use_dcn=False)
    torch.manual_seed(0)
    anchors, deltas = torch.rand(1, 3, 4) * 10, torch.randn(1, 3, 4)
    anchors[..., 2:] += 10
    quality, prob, shapes = torch.randn(1, 3, 1), torch.rand(1, 3), torch.tensor([[16., 24.]])
    a = atss.decode_candidates(prob, dict(centerness=quality, anchors=anchors, deltas=deltas),
                               shapes, atss.test_cfg)
    d = ddod.decode_candidates(prob, dict(iou=quality, anchors=anchors, deltas=deltas),
                               shapes, ddod.test_cfg)
    torch.testing.assert_close(a, d, rtol=0, atol=0)
    with pytest.raises(KeyError, match='iou'):  # a renamed map fails loudly
        ddod.decode_candidates(prob, dict(centerness=quality, anchors=anchors, deltas=deltas),
                               shapes, ddod.test_cfg)


@pytest.mark.parametrize('head_type', [ATSSHead, GFLHead, DDODHead, TOODHead])
def test_prediction_maps_feed_decode_candidates(head_type):
    head = head_type(**SMALL).eval()
    sizes = [(5, 4), (3, 2), (2, 1), (1, 1), (1, 1)]
    maps = [torch.randn(2, 4, *size) for size in sizes]
    with torch.no_grad():
        outs = head(maps)
        pred = head.prediction_maps(*outs)
        cands = dense_candidates(head, pred, torch.tensor([[40., 30.], [20., 30.]]),
                                 dict(DENSE_TEST_CFG, score_thr=0.0, nms_pre=7))
    assert isinstance(pred, PredictionMaps) and len(pred.cls_probs) == 5
    assert all(len(level_maps) == 5 for level_maps in pred.extras.values())
    # level sizes 5x4, 3x2, 2x1, 1x1, 1x1 with C=2: min(7, 2 R_l) = 7, 7, 4, 2, 2 candidates
    assert cands.boxes.shape == (2, 22, 4) and cands.scores.shape == cands.labels.shape
    assert cands.valid.all()


def test_capped_size_keeps_a_traced_size_a_tensor():
    assert capped_size(5, 3) == 3 and capped_size(2, 3) == 2
    size = torch.tensor(5)
    assert isinstance(capped_size(size, 3), torch.Tensor) and int(capped_size(size, 3)) == 3
