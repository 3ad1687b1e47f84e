"""ATSSHead: outputs, losses against a per-image reference, empty gt, hand-worked decoding."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData

from fcosdet.models.dense_heads import ATSSHead
from fcosdet.structures.bbox import bbox_overlaps
from tests.test_models.test_dense_heads.family_reference import (
    GN2,
    TINY_ANCHORS,
    TRAIN_CFG,
    atss_assign,
    check_against_reference,
    focal_sum,
    valid_rows,
)

SIZES = [(8, 8), (4, 4)]  # a 64 x 64 batch at strides 8 and 16
METAS = [dict(pad_shape=(64, 64), img_shape=(60, 64)),
         dict(pad_shape=(64, 64), img_shape=(64, 64)),
         dict(pad_shape=(32, 48), img_shape=(30, 45))]


@pytest.fixture(autouse=True)
def seed() -> None:
    torch.manual_seed(0)


def make_head(**kwargs) -> ATSSHead:
    cfg = dict(num_classes=3, in_channels=4, feat_channels=4, stacked_convs=1, norm_cfg=GN2,
               anchor_generator=TINY_ANCHORS, train_cfg=TRAIN_CFG)
    cfg.update(kwargs)
    return ATSSHead(**cfg)


def gt(boxes, labels) -> InstanceData:
    return InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        labels=torch.tensor(labels, dtype=torch.long))


def batch_gts():
    """Image 0: two boxes; image 1: none; image 2: one box on its smaller padded area."""
    return [gt([[5.3, 7.1, 30.2, 41.7], [20.4, 12.9, 60.8, 50.3]], [0, 2]), gt([], []),
            gt([[3.7, 4.2, 27.9, 29.6]], [1])]


def random_outputs(num_images=3):
    maps = [[torch.randn(num_images, c, h, w, requires_grad=True) for h, w in SIZES]
            for c in (3, 4, 1)]
    return maps


def rows(maps, i):
    """Image i's per-level maps [N, X, H_l, W_l] as one [R, X] matrix (levels in order)."""
    return torch.cat([m[i].permute(1, 2, 0).reshape(-1, m.shape[1]) for m in maps])


def reference_targets(head, gts, metas):
    """Per image: (valid flags [R], assigned gt index [R], labels [R] with -1 = background)."""
    levels = head.prior_generator.grid_priors(SIZES)
    out = []
    for g, meta in zip(gts, metas):
        valid = valid_rows(levels, SIZES, (8, 16), meta['pad_shape'])
        assigned = atss_assign(levels, valid, g.bboxes)
        labels = torch.full_like(assigned, -1)
        labels[assigned >= 0] = g.labels[assigned[assigned >= 0]]
        out.append((torch.cat(valid).float(), assigned, labels))
    return torch.cat(levels), out


def reference_losses(head, cls_scores, bbox_preds, centernesses, gts, metas):
    """MMDetection's ATSS loss computed image by image."""
    anchors, targets = reference_targets(head, gts, metas)
    avg = sum(max(int((assigned >= 0).sum()), 1) for _, assigned, _ in targets)
    loss_cls = bbox_sum = ctr_sum = ctr_target_sum = 0.0
    for i, (g, (valid, assigned, labels)) in enumerate(zip(gts, targets)):
        loss_cls = loss_cls + focal_sum(rows(cls_scores, i), labels, valid)
        pos = assigned >= 0
        if not pos.any():
            continue
        boxes, pos_anchors = g.bboxes[assigned[pos]], anchors[pos]
        cx = (pos_anchors[:, 0] + pos_anchors[:, 2]) / 2
        cy = (pos_anchors[:, 1] + pos_anchors[:, 3]) / 2
        left, right = cx - boxes[:, 0], boxes[:, 2] - cx
        top, bottom = cy - boxes[:, 1], boxes[:, 3] - cy
        ctr_t = torch.sqrt(torch.minimum(left, right) / torch.maximum(left, right)
                           * torch.minimum(top, bottom) / torch.maximum(top, bottom))
        decoded = head.bbox_coder.decode(pos_anchors, rows(bbox_preds, i)[pos])
        giou = bbox_overlaps(decoded, boxes, mode='giou', is_aligned=True)
        bbox_sum = bbox_sum + 2.0 * ((1 - giou) * ctr_t).sum()
        ctr_sum = ctr_sum + F.binary_cross_entropy_with_logits(rows(centernesses, i)[pos, 0],
                                                               ctr_t, reduction='sum')
        ctr_target_sum += float(ctr_t.sum())
    return dict(loss_cls=loss_cls / avg, loss_bbox=bbox_sum / max(ctr_target_sum, 1.0),
                loss_centerness=ctr_sum / avg)


def test_forward_shapes_and_state_dict_names():
    head = make_head(num_classes=5, stacked_convs=2)
    feats = (torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4))
    cls_scores, bbox_preds, centernesses = head(feats)
    assert [tuple(s.shape) for s in cls_scores] == [(2, 5, 8, 8), (2, 5, 4, 4)]
    assert [tuple(s.shape) for s in bbox_preds] == [(2, 4, 8, 8), (2, 4, 4, 4)]
    assert [tuple(s.shape) for s in centernesses] == [(2, 1, 8, 8), (2, 1, 4, 4)]
    assert {'cls_convs.1.gn.weight', 'reg_convs.0.conv.weight', 'atss_cls.bias',
            'atss_reg.weight', 'atss_centerness.weight', 'scales.1.scale'} <= set(
                head.state_dict())
    head.init_weights()
    torch.testing.assert_close(head.atss_cls.bias, torch.full((5,), -math.log(99.0)))


def test_losses_match_per_image_reference_on_batch_with_empty_image():
    head = make_head()
    outs = random_outputs()
    losses = head.loss_by_feat(*outs, batch_gts(), METAS)
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_centerness'}  # MMDetection's keys
    check_against_reference(losses, reference_losses(head, *outs, batch_gts(), METAS), outs)


def test_empty_gt_batch_gives_exact_zero_box_losses_with_gradients():
    head = make_head()
    feats = (torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4))
    outs = head(feats)
    losses = head.loss_by_feat(*outs, [gt([], []), gt([], [])], METAS[:2])
    assert losses['loss_bbox'].item() == 0.0 and losses['loss_centerness'].item() == 0.0
    assert all(torch.isfinite(v) for v in losses.values()) and losses['loss_cls'] > 0
    sum(losses.values()).backward()
    assert head.atss_reg.weight.grad is not None and head.atss_centerness.weight.grad is not None
    assert torch.count_nonzero(head.atss_reg.weight.grad) == 0


def test_predict_decodes_deltas_and_multiplies_centerness_by_hand():
    """Level 0 point (1, 1): anchor centre (8, 8), 16 x 16. dx = 0.5 (x std 0.1 x w 16 = 0.8
    px right), dw = ln 2 / 0.2 (width x2): box centre (8.8, 8), 32 x 16, i.e.
    [-7.2, 0, 24.8, 16] clipped to x >= 0. Score sigmoid(ln 4) * sigmoid(0) = 0.8 * 0.5."""
    head = make_head(num_classes=2)
    cls_scores = [torch.full((1, 2, 2, 2), -10.0), torch.full((1, 2, 1, 1), -10.0)]
    cls_scores[0][0, 1, 1, 1] = math.log(4.0)
    bbox_preds = [torch.zeros(1, 4, 2, 2), torch.zeros(1, 4, 1, 1)]
    bbox_preds[0][0, :, 1, 1] = torch.tensor([0.5, 0.0, math.log(2.0) / 0.2, 0.0])
    centernesses = [torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 1, 1)]
    (result,) = head.predict_by_feat(cls_scores, bbox_preds, centernesses,
                                     [dict(img_shape=(100, 100), scale_factor=(2.0, 1.0))],
                                     rescale=True)
    torch.testing.assert_close(result.bboxes, torch.tensor([[0.0, 0.0, 12.4, 16.0]]))
    torch.testing.assert_close(result.scores, torch.tensor([0.4]))
    assert result.labels.tolist() == [1]


def test_bad_config_fails_early():
    with pytest.raises(KeyError, match="ATSSHead train_cfg: \\['assigner'\\]"):
        make_head(train_cfg=dict(allowed_border=-1))
    with pytest.raises(KeyError, match='ATSSHead test_cfg: unknown key'):
        make_head(test_cfg=dict(nms_thr=0.5))
    with pytest.raises(ValueError, match='needs train_cfg with an assigner'):
        make_head(train_cfg=None).loss_by_feat(*random_outputs(1), batch_gts()[:1], METAS[:1])
