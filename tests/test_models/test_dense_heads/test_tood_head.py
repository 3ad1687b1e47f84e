"""TOODHead: layer attention and per-side deformable sampling against direct formulas, forward
and predict by hand, losses of both phases against a per-image float64 reference, empty gt."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fcosdet.models.dense_heads import TOODHead
from fcosdet.models.layers import deform_sampling
from fcosdet.models.layers.task_decomposition import TaskDecomposition
from fcosdet.structures.bbox import bbox_overlaps
from tests.test_models.test_dense_heads.family_reference import (
    GN2,
    TINY_ANCHORS,
    atss_assign,
    check_against_reference,
    valid_rows,
)
from tests.test_models.test_dense_heads.test_atss_head import METAS, SIZES, batch_gts, gt, rows

TRAIN_CFG = dict(initial_epoch=1, initial_assigner=dict(type='ATSSAssigner', topk=9),
                 assigner=dict(type='TaskAlignedAssigner', topk=13), alpha=1, beta=6,
                 allowed_border=-1, pos_weight=-1, debug=False)
STRIDES = (8, 16)


@pytest.fixture(autouse=True)
def seed() -> None:
    torch.manual_seed(0)


def make_head(**kwargs) -> TOODHead:
    cfg = dict(num_classes=3, in_channels=4, feat_channels=8, stacked_convs=2, norm_cfg=GN2,
               anchor_generator=TINY_ANCHORS, train_cfg=TRAIN_CFG)
    cfg.update(kwargs)
    return TOODHead(**cfg)


def test_task_decomposition_is_layer_attention_then_reduction():
    """Direct formula: weights σ(W2·ReLU(W1·avg + b1) + b2) per stacked layer scale the
    features, then 1x1 conv, GroupNorm, ReLU (and the conv bias when there is no norm)."""
    feat = torch.randn(2, 12, 5, 6)
    for norm_cfg in (dict(type='GN', num_groups=2), None):
        decomp = TaskDecomposition(4, 3, la_down_rate=2, norm_cfg=norm_cfg)
        for param in decomp.parameters():
            nn.init.normal_(param, std=0.5)
        first, _, second, _ = decomp.layer_attention
        pooled = feat.mean(dim=(2, 3), keepdim=True)
        weight = torch.sigmoid(F.conv2d(F.relu(F.conv2d(pooled, first.weight, first.bias)),
                                        second.weight, second.bias))  # [2, 3, 1, 1]
        scaled = (feat.reshape(2, 3, 4, 5, 6) * weight.reshape(2, 3, 1, 1, 1)).reshape(feat.shape)
        conv = decomp.reduction_conv.conv
        out = F.conv2d(scaled, conv.weight, conv.bias)
        if norm_cfg is not None:
            norm = decomp.reduction_conv.gn
            out = F.group_norm(out, 2, norm.weight, norm.bias, norm.eps)
        torch.testing.assert_close(decomp(feat), F.relu(out))


def bilinear(image: torch.Tensor, y: float, x: float) -> float:
    """Bilinear sample of ``image [H, W]`` at (y, x); corners off the image read 0."""
    height, width = image.shape
    y0, x0 = math.floor(y), math.floor(x)
    total = 0.0
    for yy in (y0, y0 + 1):
        for xx in (x0, x0 + 1):
            if 0 <= yy < height and 0 <= xx < width:
                total += (1 - abs(y - yy)) * (1 - abs(x - xx)) * float(image[yy, xx])
    return total


def test_deform_sampling_reads_every_channel_at_its_own_offset():
    x = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    offset = (torch.rand(2, 8, 3, 5, dtype=torch.float64) - 0.5) * 8  # fractional, some off
    out = deform_sampling(x, offset)
    expected = torch.zeros_like(x)
    outside = 0
    for n in range(2):
        for c in range(4):
            for i in range(3):
                for j in range(5):
                    y, xx = i + float(offset[n, 2 * c, i, j]), j + float(offset[n, 2 * c + 1, i, j])
                    outside += not (0 <= y <= 2 and 0 <= xx <= 4)
                    expected[n, c, i, j] = bilinear(x[n, c], y, xx)
    assert outside > 10  # the offsets really reach off the map
    torch.testing.assert_close(out, expected)


def set_constant_outputs(head: TOODHead, cls_bias: float, prob_bias: float,
                         reg_bias: float, offset_bias: torch.Tensor | None = None) -> None:
    """Make the four output convs constant: zero weights, the given biases."""
    for conv, bias in ((head.tood_cls, cls_bias), (head.cls_prob_module[2], prob_bias),
                       (head.tood_reg, reg_bias), (head.reg_offset_module[2], 0.0)):
        nn.init.zeros_(conv.weight)
        nn.init.constant_(conv.bias, bias)
    if offset_bias is not None:
        head.reg_offset_module[2].bias.data.copy_(offset_bias)


def test_forward_by_hand_and_shapes():
    """Class score sqrt(σ(ln 4) · σ(−ln 4)) = sqrt(0.8 · 0.2) = 0.4; distances exp(ln 2) = 2
    strides around the anchor centre (j, i) in strides; zero offsets keep them."""
    head = make_head(num_classes=5)
    head.init_weights()
    set_constant_outputs(head, math.log(4), -math.log(4), math.log(2))
    cls_scores, bbox_preds = head((torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4)))
    assert [tuple(s.shape) for s in cls_scores] == [(2, 5, 8, 8), (2, 5, 4, 4)]
    assert [tuple(s.shape) for s in bbox_preds] == [(2, 4, 8, 8), (2, 4, 4, 4)]
    torch.testing.assert_close(cls_scores[1], torch.full((2, 5, 4, 4), 0.4))
    ys, xs = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing='ij')
    expected = torch.stack([xs - 2, ys - 2, xs + 2, ys + 2])[None].expand(2, -1, -1, -1)
    torch.testing.assert_close(bbox_preds[1], expected)


def test_sides_that_cross_keep_the_unsampled_box():
    """x1 read 6 cells to the right: at column 0 it is x1(6) = 4 > x2 = 2, so the box keeps
    x1 = -2; at column 2 it reads off the map (0 < x2 = 4) and the sampled 0 is kept."""
    head = make_head()
    offsets = torch.zeros(8)
    offsets[1] = 6.0  # dx of side x1
    set_constant_outputs(head, 0.0, 0.0, math.log(2), offsets)
    _, bbox_preds = head((torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4)))
    assert bbox_preds[0][0, :, 0, 0].tolist() == [-2.0, -2.0, 2.0, 2.0]
    assert bbox_preds[0][0, :, 0, 2].tolist() == [0.0, -2.0, 4.0, 2.0]


def test_anchor_based_decodes_deltas_against_the_anchor():
    """Zero deltas give the anchor itself: 16 px wide at stride 8 = 2 strides around (j, i)."""
    head = make_head(anchor_type='anchor_based')
    set_constant_outputs(head, 0.0, 0.0, 0.0)
    _, bbox_preds = head((torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4)))
    torch.testing.assert_close(bbox_preds[0][0, :, 3, 5], torch.tensor([4.0, 2.0, 6.0, 4.0]))


def test_predict_scales_boxes_by_the_stride_without_clipping():
    """Level 1 point (0, 0): score 0.9, box (−0.5, −0.25, 1, 2) strides → pixels ×16."""
    head = make_head(num_classes=2)
    cls_scores = [torch.full((1, 2, 8, 8), 0.01), torch.full((1, 2, 4, 4), 0.01)]
    cls_scores[1][0, 1, 0, 0] = 0.9
    bbox_preds = [torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 4, 4)]
    bbox_preds[1][0, :, 0, 0] = torch.tensor([-0.5, -0.25, 1.0, 2.0])
    (result,) = head.predict_by_feat(cls_scores, bbox_preds,
                                     [dict(img_shape=(20, 20), scale_factor=(2.0, 2.0))],
                                     rescale=True)
    torch.testing.assert_close(result.bboxes, torch.tensor([[-4.0, -2.0, 8.0, 16.0]]))
    torch.testing.assert_close(result.scores, torch.tensor([0.9]))
    assert result.labels.tolist() == [1]


def random_outputs(num_images: int = 3) -> list[list[torch.Tensor]]:
    """Probabilities in (0.05, 0.95) and boxes 0.2-3.2 strides around each anchor centre."""
    cls_scores = [(torch.rand(num_images, 3, h, w) * 0.9 + 0.05).requires_grad_()
                  for h, w in SIZES]
    bbox_preds = []
    for h, w in SIZES:
        ys, xs = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing='ij')
        centre = torch.stack([xs, ys])[None]
        dist = torch.rand(num_images, 4, h, w) * 3 + 0.2
        bbox_preds.append(torch.cat([centre - dist[:, :2], centre + dist[:, 2:]], 1)
                          .requires_grad_())
    return [cls_scores, bbox_preds]


def aligned_assign(anchors, valid, probs, boxes, g, topk=13):
    """Task-aligned assignment of one image, gt by gt: t = s·u^6, top-k of the valid anchors,
    positive when t > 0 and the centre is inside; the highest IoU wins, then the earlier gt.
    Returns the assigned gt per anchor (-1 background) and the normalised targets."""
    num_anchors = len(anchors)
    assigned = torch.full((num_anchors,), -1)
    soft = torch.zeros(num_anchors, dtype=torch.float64)
    if len(g.bboxes) == 0:
        return assigned, soft
    ious = bbox_overlaps(boxes, g.bboxes.double())  # [R, M]
    metrics = probs[:, g.labels] * ious ** 6
    best = torch.full((num_anchors,), -1.0, dtype=torch.float64)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    for j, box in enumerate(g.bboxes.tolist()):
        ranked = torch.where(valid, metrics[:, j], -1.0).tolist()
        for r in sorted(range(num_anchors), key=lambda r: (-ranked[r], r))[:topk]:
            cx, cy = centres[r].tolist()
            inside = min(cx - box[0], cy - box[1], box[2] - cx, box[3] - cy) > 0.01
            if ranked[r] > 0 and inside and ious[r, j] > best[r]:
                best[r], assigned[r] = ious[r, j], j
    for j in range(len(g.bboxes)):
        members = assigned == j
        if members.any():
            t, u = metrics[members, j], ious[members, j]
            soft[members] = t / (t.max() + 1e-7) * u.max()
    return assigned, soft


def reference_losses(head, cls_scores, bbox_preds, gts, metas, warm_up):
    """MMDetection's TOOD loss image by image in float64: focal loss (warm-up, ATSS, box weight
    = centre-ness) or QFL on the normalised metric (which also weights the boxes); both sums
    divided by the sum of their weights over the batch (at least 1)."""
    levels = head.prior_generator.grid_priors(SIZES)
    anchors = torch.cat(levels).double()
    strides = torch.cat([torch.full((h * w,), float(s)) for (h, w), s in zip(SIZES, STRIDES)])
    cls_sum = box_sum = cls_norm = box_norm = 0.0
    for i, (g, meta) in enumerate(zip(gts, metas)):
        probs, boxes = rows(cls_scores, i).double(), rows(bbox_preds, i).double()
        valid = torch.cat(valid_rows(levels, SIZES, STRIDES, meta['pad_shape']))
        if warm_up:
            assigned = atss_assign(levels, valid_rows(levels, SIZES, STRIDES, meta['pad_shape']),
                                   g.bboxes)
            soft = (assigned >= 0).double()
        else:
            assigned, soft = aligned_assign(anchors, valid, probs.detach(),
                                            boxes.detach() * strides[:, None], g)
        pos = assigned >= 0
        target = torch.zeros_like(probs)
        target[pos, g.labels[assigned[pos]]] = soft[pos] if not warm_up else 1.0
        bce = F.binary_cross_entropy(probs, target, reduction='none')
        if warm_up:  # focal: alpha 0.25, gamma 2
            p_t = torch.where(target > 0, probs, 1 - probs)
            loss = torch.where(target > 0, 0.25, 0.75) * (1 - p_t) ** 2 * bce
        else:  # QFL, beta 2
            loss = bce * (target - probs).abs() ** 2
        cls_sum = cls_sum + (loss.sum(1) * valid).sum()
        cls_norm += float(soft.sum())
        if not pos.any():
            continue
        gt_boxes = g.bboxes.double()[assigned[pos]]
        if warm_up:
            centre = (anchors[pos, :2] + anchors[pos, 2:]) / 2
            lt, rb = centre - gt_boxes[:, :2], gt_boxes[:, 2:] - centre
            weight = torch.sqrt(torch.minimum(lt, rb).prod(1) / torch.maximum(lt, rb).prod(1))
        else:
            weight = soft[pos]
        giou = bbox_overlaps(boxes[pos], gt_boxes / strides[pos, None], mode='giou',
                             is_aligned=True)
        box_sum = box_sum + 2.0 * ((1 - giou) * weight).sum()
        box_norm += float(weight.sum())
    return dict(loss_cls=(cls_sum / max(cls_norm, 1.0)).float(),
                loss_bbox=(box_sum / max(box_norm, 1.0)).float())


@pytest.mark.parametrize('epoch', [0, 1], ids=['warm-up', 'task-aligned'])
def test_losses_match_per_image_reference_on_batch_with_empty_image(epoch: int):
    head = make_head()
    head.epoch = epoch
    outs = random_outputs()
    losses = head.loss_by_feat(*outs, batch_gts(), METAS)
    assert set(losses) == {'loss_cls', 'loss_bbox'}  # MMDetection's keys
    expected = reference_losses(head, *outs, batch_gts(), METAS, warm_up=epoch < 1)
    check_against_reference(losses, expected, outs)


def test_task_aligned_phase_has_positives_and_soft_targets():
    """The scene of the reference test is not trivial in the task-aligned phase."""
    head = make_head()
    head.epoch = 1
    cls_scores, bbox_preds = random_outputs()
    targets, alignment = head.get_targets(cls_scores, bbox_preds, batch_gts(), METAS)
    pos = targets.assign.pos_mask
    assert pos[0].sum() >= 4 and pos[2].sum() >= 2 and not pos[1].any()
    assert 0 < float(alignment[pos].min()) < float(alignment[pos].max()) <= 1


def test_empty_gt_batch_gives_exact_zero_box_loss_with_gradients():
    for epoch in (0, 1):
        head = make_head()
        head.epoch = epoch
        outs = head((torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4)))
        losses = head.loss_by_feat(*outs, [gt([], []), gt([], [])], METAS[:2])
        assert losses['loss_bbox'].item() == 0.0
        assert torch.isfinite(losses['loss_cls']) and losses['loss_cls'] > 0
        sum(losses.values()).backward()
        assert head.tood_reg.weight.grad is not None
        assert torch.count_nonzero(head.tood_reg.weight.grad) == 0


def test_init_weights_sets_the_class_prior():
    head = make_head()
    head.init_weights()
    prior = -math.log(99.0)
    torch.testing.assert_close(head.tood_cls.bias, torch.full((3,), prior))
    torch.testing.assert_close(head.cls_prob_module[2].bias, torch.full((1,), prior))
    assert (head.reg_offset_module[2].bias == 0).all()
    assert float(head.reg_offset_module[2].weight.detach().std()) < 0.005


def test_bad_config_fails_early():
    with pytest.raises(ValueError, match="anchor_type must be one of .* got 'anchor'"):
        make_head(anchor_type='anchor')
    with pytest.raises(KeyError, match=r"missing \['initial_epoch'\]"):
        make_head(train_cfg={k: v for k, v in TRAIN_CFG.items() if k != 'initial_epoch'})
    with pytest.raises(ValueError, match='num_dcn must be an int in'):
        make_head(num_dcn=3)


def test_num_dcn_makes_the_first_stacked_convs_deformable():
    head = make_head(num_dcn=1)
    assert 'inter_convs.0.conv.conv_offset.weight' in head.state_dict()
    assert 'inter_convs.1.conv.conv_offset.weight' not in head.state_dict()
    assert head.inter_convs[0].conv.deform_groups == 4
    cls_scores, _ = head((torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4)))
    assert tuple(cls_scores[0].shape) == (1, 3, 8, 8)
