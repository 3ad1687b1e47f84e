"""GFLHead: outputs, integral decoding by hand, losses against a per-image reference, empty gt."""
import math

import pytest
import torch
import torch.nn.functional as F

from fcosdet.models.dense_heads import GFLHead, Integral
from fcosdet.structures.bbox import bbox_overlaps
from tests.test_models.test_dense_heads.family_reference import (
    GN2,
    TINY_ANCHORS,
    TRAIN_CFG,
    check_against_reference,
)
from tests.test_models.test_dense_heads.test_atss_head import (
    METAS,
    SIZES,
    batch_gts,
    gt,
    reference_targets,
    rows,
)

REG_MAX = 4  # 5 bins keep the test tensors small


@pytest.fixture(autouse=True)
def seed() -> None:
    torch.manual_seed(0)


def make_head(**kwargs) -> GFLHead:
    cfg = dict(num_classes=3, in_channels=4, feat_channels=4, stacked_convs=1, norm_cfg=GN2,
               anchor_generator=TINY_ANCHORS, train_cfg=TRAIN_CFG, reg_max=REG_MAX)
    cfg.update(kwargs)
    return GFLHead(**cfg)


def reference_losses(head, cls_scores, bbox_preds, gts, metas):
    """MMDetection's GFL loss computed image by image, integral and DFL from their formulas."""
    anchors, targets = reference_targets(head, gts, metas)
    strides = torch.cat([torch.full((h * w,), s, dtype=torch.float32)
                         for (h, w), s in zip(SIZES, (8, 16))])
    avg = sum(max(int((assigned >= 0).sum()), 1) for _, assigned, _ in targets)
    qfl = giou_sum = dfl_sum = weight_sum = 0.0
    for i, (g, (valid, assigned, labels)) in enumerate(zip(gts, targets)):
        cls, reg = rows(cls_scores, i), rows(bbox_preds, i)
        pos = assigned >= 0
        stride = strides[pos][:, None]
        centres = (anchors[pos, :2] + anchors[pos, 2:]) / 2 / stride
        boxes = g.bboxes[assigned[pos]] / stride
        probs = reg[pos].reshape(-1, 4, REG_MAX + 1).softmax(-1)
        dist = (probs * torch.arange(REG_MAX + 1.0)).sum(-1)  # [P, 4] expected l, t, r, b
        decoded = torch.cat([centres - dist[:, :2], centres + dist[:, 2:]], dim=1)
        quality = torch.zeros_like(cls)
        quality[pos, labels[pos]] = bbox_overlaps(decoded.detach(), boxes, is_aligned=True)
        sig = cls.sigmoid()
        qfl = qfl + ((F.binary_cross_entropy_with_logits(cls, quality, reduction='none')
                      * (quality - sig).abs() ** 2).sum(1) * valid).sum()
        weight = sig.detach().max(1).values[pos]
        giou = bbox_overlaps(decoded, boxes, mode='giou', is_aligned=True)
        giou_sum = giou_sum + 2.0 * ((1 - giou) * weight).sum()
        target = torch.cat([centres - boxes[:, :2], boxes[:, 2:] - centres], 1).clamp(
            0, REG_MAX - 0.1)
        left = target.floor()
        log_p = reg[pos].reshape(-1, 4, REG_MAX + 1).log_softmax(-1)
        dfl = -((left + 1 - target) * log_p.gather(2, left.long()[..., None])[..., 0]
                + (target - left) * log_p.gather(2, left.long()[..., None] + 1)[..., 0])
        dfl_sum = dfl_sum + 0.25 * (dfl * weight[:, None]).sum() / 4
        weight_sum += float(weight.sum())
    return dict(loss_cls=qfl / avg, loss_bbox=giou_sum / max(weight_sum, 1.0),
                loss_dfl=dfl_sum / max(weight_sum, 1.0))


def test_forward_shapes_and_state_dict_names():
    head = make_head(num_classes=5, reg_max=16)
    cls_scores, bbox_preds = head((torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4)))
    assert [tuple(s.shape) for s in cls_scores] == [(2, 5, 8, 8), (2, 5, 4, 4)]
    assert [tuple(s.shape) for s in bbox_preds] == [(2, 68, 8, 8), (2, 68, 4, 4)]
    state = head.state_dict()
    assert state['integral.project'].tolist() == list(range(17))
    assert {'gfl_cls.weight', 'gfl_reg.bias', 'scales.1.scale', 'cls_convs.0.gn.bias'} <= set(
        state)


def test_integral_by_hand():
    """Bins 0..2: softmax of (0, ln 2, 0) is (1/4, 1/2, 1/4) -> 1.0; of (ln 3, 0, 0) is
    (3/5, 1/5, 1/5) -> 0.6; far-negative logits except bin 2 -> 2."""
    integral = Integral(reg_max=2)
    logits = torch.tensor([[0.0, math.log(2), 0.0, math.log(3), 0.0, 0.0,
                            -50.0, -50.0, 0.0, 0.0, -50.0, -50.0]])
    torch.testing.assert_close(integral(logits), torch.tensor([[1.0, 0.6, 2.0, 0.0]]))


def test_predict_decodes_the_integral_around_the_anchor_centre():
    """Level 0 point (1, 1): anchor centre (8, 8), stride 8. Expected distances in strides:
    l = 1.5 (bins 1, 2 equal), t = 1, r = 2, b = 2 (bins 0 and 4 equal) -> pixels 12, 8, 16,
    16 -> [-4, 0, 24, 24], clipped to x >= 0. Score sigmoid(ln 4) = 0.8."""
    head = make_head(num_classes=2)
    cls_scores = [torch.full((1, 2, 2, 2), -10.0), torch.full((1, 2, 1, 1), -10.0)]
    cls_scores[0][0, 0, 1, 1] = math.log(4.0)
    bins = torch.full((4, REG_MAX + 1), -50.0)
    bins[0, 1:3] = bins[1, 1] = bins[2, 2] = bins[3, 0] = bins[3, 4] = 0.0
    bbox_preds = [torch.zeros(1, 4 * (REG_MAX + 1), 2, 2), torch.zeros(1, 20, 1, 1)]
    bbox_preds[0][0, :, 1, 1] = bins.reshape(-1)
    (result,) = head.predict_by_feat(cls_scores, bbox_preds,
                                     [dict(img_shape=(100, 100), scale_factor=(1.0, 1.0))])
    torch.testing.assert_close(result.bboxes, torch.tensor([[0.0, 0.0, 24.0, 24.0]]))
    torch.testing.assert_close(result.scores, torch.tensor([0.8]))
    assert result.labels.tolist() == [0]


def test_losses_match_per_image_reference_on_batch_with_empty_image():
    head = make_head()
    outs = [[torch.randn(3, c, h, w, requires_grad=True) for h, w in SIZES]
            for c in (3, 4 * (REG_MAX + 1))]
    losses = head.loss_by_feat(*outs, batch_gts(), METAS)
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_dfl'}  # MMDetection's keys
    check_against_reference(losses, reference_losses(head, *outs, batch_gts(), METAS), outs)


def test_empty_gt_batch_gives_exact_zero_box_losses_with_gradients():
    head = make_head()
    outs = head((torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4)))
    losses = head.loss_by_feat(*outs, [gt([], []), gt([], [])], METAS[:2])
    assert losses['loss_bbox'].item() == 0.0 and losses['loss_dfl'].item() == 0.0
    assert all(torch.isfinite(v) for v in losses.values()) and losses['loss_cls'] > 0
    sum(losses.values()).backward()
    assert head.gfl_reg.weight.grad is not None
    assert torch.count_nonzero(head.gfl_reg.weight.grad) == 0


def test_bad_config_fails_early():
    with pytest.raises(ValueError, match='GFLHead reg_max must be a positive int'):
        make_head(reg_max=0)
