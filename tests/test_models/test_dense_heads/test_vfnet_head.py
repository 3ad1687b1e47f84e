"""VFNetHead: star offsets, outputs, losses (incl. an empty-gt batch) and decoding."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData

from fcosdet.models.dense_heads import VFNetHead
from fcosdet.models.dense_heads.vfnet_head import star_dcn_offset
from fcosdet.models.layers import deform_conv2d_pure
from fcosdet.structures.bbox import bbox_overlaps

GN4 = dict(type='GN', num_groups=4, requires_grad=True)
ANCHORS = dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=8, scales_per_octave=1,
               center_offset=0.0, strides=[8, 16])
METAS = [dict(pad_shape=(64, 64), img_shape=(64, 64), scale_factor=(1.0, 1.0))] * 2


def make_head(**kwargs) -> VFNetHead:
    torch.manual_seed(0)
    cfg = dict(num_classes=3, in_channels=8, feat_channels=8, stacked_convs=1, norm_cfg=GN4,
               strides=(8, 16), regress_ranges=((-1, 64), (64, 1e8)), anchor_generator=ANCHORS,
               train_cfg=dict(assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1,
                              pos_weight=-1, debug=False))
    cfg.update(kwargs)
    head = VFNetHead(**cfg)
    head.init_weights()
    return head


def feats() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(2, 8, 8, 8, generator=gen), torch.rand(2, 8, 4, 4, generator=gen)


def test_star_offsets_hand_worked():
    """(l, t, r, b) = (8, 16, 24, 32) px at stride 8 is (1, 2, 3, 4) cells: kernel rows sample
    at dy in (-2, 0, 4) and columns at dx in (-1, 0, 3); the offset is that minus the regular
    3x3 position (i - 1, j - 1)."""
    pred = torch.tensor([8.0, 16.0, 24.0, 32.0]).view(1, 4, 1, 1)
    offset = star_dcn_offset(pred, 0.1, 8).view(9, 2)
    star = [(dy, dx) for dy in (-2.0, 0.0, 4.0) for dx in (-1.0, 0.0, 3.0)]
    grid = [(i - 1.0, j - 1.0) for i in range(3) for j in range(3)]
    expected = torch.tensor([(sy - gy, sx - gx) for (sy, sx), (gy, gx) in zip(star, grid)])
    torch.testing.assert_close(offset, expected)


def test_star_offsets_sample_the_box_star_and_scale_the_gradient():
    """Through the deformable conv, kernel point k reads the input at the k-th star point;
    only gradient_mul / stride of the gradient reaches the distances."""
    x = torch.arange(100.0).view(1, 1, 10, 10)
    pred = torch.tensor([16.0, 8.0, 24.0, 32.0]).view(1, 4, 1, 1)  # cells (2, 1, 3, 4)
    pred = pred.expand(1, 4, 10, 10).contiguous().requires_grad_()
    offset = star_dcn_offset(pred, 0.25, 8)
    weight = torch.eye(9).view(9, 1, 3, 3)  # output channel k = kernel point k
    out = deform_conv2d_pure(x, offset, weight, padding=1)
    y0, x0 = 4, 5
    rows, cols = (y0 - 1, y0, y0 + 4), (x0 - 2, x0, x0 + 3)
    expected = torch.tensor([x[0, 0, r, c] for r in rows for c in cols])
    torch.testing.assert_close(out[0, :, y0, x0], expected)
    offset[0, 0, y0, x0].backward()  # dy of kernel point 0 is -t / stride
    assert pred.grad[0, 1, y0, x0].item() == pytest.approx(-0.25 / 8)
    assert pred.grad.abs().sum().item() == pytest.approx(0.25 / 8)


def test_forward_outputs_as_mmdetection():
    head = make_head()
    cls_scores, bbox_preds, refine = head(feats())
    assert [tuple(c.shape) for c in cls_scores] == [(2, 3, 8, 8), (2, 3, 4, 4)]
    assert [tuple(b.shape) for b in bbox_preds] == [(2, 4, 8, 8), (2, 4, 4, 4)]
    assert all((b > 0).all() for b in bbox_preds + refine)
    # refined = exp(scale_refine * conv) * initial, with the initial detached
    head.eval()
    with torch.no_grad():
        eval_outs = head(feats())
    assert len(eval_outs) == 2  # class scores and refined boxes in eval mode
    torch.testing.assert_close(eval_outs[1][0], refine[0].detach())


def test_initial_distances_scale_by_reg_denom():
    head = make_head()
    with torch.no_grad():
        head.vfnet_reg.weight.zero_()
        head.vfnet_reg.bias.fill_(math.log(0.5))
    _, bbox_preds, _ = head(feats())
    # reg_denoms: upper bounds of the ranges, the last one twice the previous: 64, 128
    torch.testing.assert_close(bbox_preds[0], torch.full_like(bbox_preds[0], 32.0))
    torch.testing.assert_close(bbox_preds[1], torch.full_like(bbox_preds[1], 64.0))


def vfl_reference(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = logits.sigmoid()
    weight = torch.where(target > 0, target, 0.75 * (p - target).abs() ** 2)
    return (F.binary_cross_entropy_with_logits(logits, target, reduction='none') * weight).sum()


def test_losses_use_iou_of_refined_boxes_as_class_targets():
    head = make_head()
    outs = head(feats())
    gts = [InstanceData(bboxes=torch.tensor([[4.0, 6.0, 40.0, 50.0]]), labels=torch.tensor([1])),
           InstanceData(bboxes=torch.tensor([[30.0, 20.0, 62.0, 60.0]]),
                        labels=torch.tensor([2]))]
    losses = head.loss_by_feat(*outs, gts, METAS)
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_bbox_rf'}
    points = head.point_generator.grid_priors([(8, 8), (4, 4)])
    labels, _, _ = head.get_targets(outs[0], points, gts, METAS)
    flat_pts = torch.cat(points)
    target = torch.zeros(2, 80, 3)
    for n in range(2):
        refine = torch.cat([r[n].permute(1, 2, 0).reshape(-1, 4) for r in outs[2]])
        for r in (labels[n] < 3).nonzero()[:, 0]:
            box = torch.cat([flat_pts[r] - refine[r, :2], flat_pts[r] + refine[r, 2:]])
            iou = bbox_overlaps(box[None], gts[n].bboxes, is_aligned=True).clamp(min=1e-6)
            target[n, r, labels[n, r]] = iou.detach()[0]
    num_pos = (labels < 3).sum()
    assert num_pos > 0
    logits = torch.cat([c.permute(0, 2, 3, 1).reshape(2, -1, 3) for c in outs[0]], dim=1)
    torch.testing.assert_close(losses['loss_cls'], vfl_reference(logits, target) / num_pos)


def test_empty_gt_batch_gives_graph_connected_zero_box_losses():
    head = make_head()
    empty = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    losses = head.loss_by_feat(*head(feats()), [empty, empty], METAS)
    assert losses['loss_bbox'].item() == 0 and losses['loss_bbox_rf'].item() == 0
    assert 0 < losses['loss_cls'].item() < math.inf
    sum(losses.values()).backward()
    assert head.vfnet_cls.weight.grad is not None and head.vfnet_reg.weight.grad is not None


def test_predict_decodes_refined_distances_from_anchor_centres():
    """Points sit at (j * s, i * s) (offset 0, the ATSS anchor centres)."""
    head = make_head()
    cls_scores = [torch.full((1, 3, 8, 8), -10.0), torch.full((1, 3, 4, 4), -10.0)]
    cls_scores[0][0, 1, 2, 3] = 2.0
    bbox_preds = [torch.ones(1, 4, 8, 8), torch.ones(1, 4, 4, 4)]
    bbox_preds[0][0, :, 2, 3] = torch.tensor([4.0, 6.0, 10.0, 12.0])
    result = head.predict_by_feat(cls_scores, bbox_preds, METAS[:1])[0]
    torch.testing.assert_close(result.bboxes, torch.tensor([[20.0, 10.0, 34.0, 28.0]]))
    torch.testing.assert_close(result.scores, torch.sigmoid(torch.tensor([2.0])))
    assert result.labels.tolist() == [1]


def test_unsupported_options_fail_early():
    with pytest.raises(ValueError, match='use_atss=True'):
        make_head(use_atss=False)
    with pytest.raises(ValueError, match='bbox_norm_type'):
        make_head(bbox_norm_type='log')
