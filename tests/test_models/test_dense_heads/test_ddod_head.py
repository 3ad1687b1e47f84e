"""DDODHead: names and shapes, cost-based cls / reg assignment on a hand-worked scene, level
reweighting, IoU targets, losses against an independent per-image reference of MMDetection's
algorithm (including an image without boxes), empty-gt batches, prediction."""
import math

import pytest
import torch
from mmengine.structures import InstanceData

from fcosdet.models.dense_heads.ddod_head import DDODHead

GN8 = dict(type='GN', num_groups=8, requires_grad=True)
STDS = torch.tensor([0.1, 0.1, 0.2, 0.2], dtype=torch.float64)
MAX_RATIO = abs(math.log(16 / 1000))  # DeltaXYWHBBoxCoder's wh_ratio_clip


@pytest.fixture(autouse=True)
def seed() -> None:
    torch.manual_seed(0)


def make_head(strides=(8, 16), octave_base_scale=8, topk=9, **kwargs) -> DDODHead:
    cfg = dict(
        num_classes=3, in_channels=16, feat_channels=16, stacked_convs=1, use_dcn=False,
        norm_cfg=GN8,
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0],
                              octave_base_scale=octave_base_scale, scales_per_octave=1,
                              strides=list(strides)),
        train_cfg=dict(assigner=dict(type='ATSSAssigner', topk=topk, alpha=0.8),
                       reg_assigner=dict(type='ATSSAssigner', topk=topk, alpha=0.5),
                       allowed_border=-1, pos_weight=-1, debug=False))
    cfg.update(kwargs)
    return DDODHead(**cfg)


def gt(boxes: list[list[float]], labels: list[int]) -> InstanceData:
    return InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        labels=torch.tensor(labels, dtype=torch.long))


def metas(num_images: int, pad_shape: tuple[int, int]) -> list[dict]:
    return [dict(img_shape=pad_shape, pad_shape=pad_shape, batch_input_shape=pad_shape)
            for _ in range(num_images)]


def ref_valid(sizes: list[tuple[int, int]], strides: list[int],
              pad_shape: tuple[int, int]) -> torch.Tensor:
    """Anchors on the image's own padded area: row < ceil(h / s), column < ceil(w / s)."""
    return torch.tensor([y < math.ceil(pad_shape[0] / s) and x < math.ceil(pad_shape[1] / s)
                         for (h, w), s in zip(sizes, strides) for y in range(h) for x in range(w)])


# ---- an independent, per-image reference of MMDetection 3.3's DDOD losses (float64) ----------

def ref_anchors(sizes: list[tuple[int, int]], strides: list[int], base: float) -> torch.Tensor:
    rows = []
    for (h, w), s in zip(sizes, strides):
        half = base * s / 2  # centre offset 0: the anchor of cell (x, y) is centred on (xs, ys)
        rows += [[x * s - half, y * s - half, x * s + half, y * s + half]
                 for y in range(h) for x in range(w)]
    return torch.tensor(rows, dtype=torch.float64)


def ref_decode(anchors: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    d = deltas.double() * STDS
    pw, ph = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    px, py = anchors[:, 0] + pw / 2, anchors[:, 1] + ph / 2
    gw = pw * d[:, 2].clamp(-MAX_RATIO, MAX_RATIO).exp()
    gh = ph * d[:, 3].clamp(-MAX_RATIO, MAX_RATIO).exp()
    gx, gy = px + pw * d[:, 0], py + ph * d[:, 1]
    return torch.stack([gx - gw / 2, gy - gh / 2, gx + gw / 2, gy + gh / 2], dim=1)


def ref_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU ``[A, B]`` (eps 1e-6 on the union, as BboxOverlaps2D)."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    return inter / (area_a[:, None] + area_b[None] - inter).clamp(min=1e-6)


def ref_giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Aligned GIoU ``[P]``."""
    iou = torch.stack([ref_iou(x[None], y[None])[0, 0] for x, y in zip(a, b)])
    enclose = (torch.max(a[:, 2:], b[:, 2:]) - torch.min(a[:, :2], b[:, :2])).prod(-1)
    inter = (torch.min(a[:, 2:], b[:, 2:]) - torch.max(a[:, :2], b[:, :2])).clamp(min=0).prod(-1)
    union = (a[:, 2:] - a[:, :2]).prod(-1) + (b[:, 2:] - b[:, :2]).prod(-1) - inter
    return iou - (enclose - union) / enclose.clamp(min=1e-6)


def ref_assign(anchors, num_level, valid, gt_boxes, gt_labels, logits, pred_boxes, topk,
               alpha):
    """Cost-based ATSS of one image over its valid anchors, one gt at a time: index of the
    assigned gt or -1."""
    num_anchors = anchors.shape[0]
    assigned = torch.full((num_anchors,), -1, dtype=torch.long)
    if gt_boxes.shape[0] == 0:
        return assigned
    cost = (logits[:, gt_labels].sigmoid() ** (1 - alpha)
            * ref_iou(pred_boxes, gt_boxes) ** alpha)  # [R, M]
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    best = torch.full((num_anchors,), -math.inf, dtype=torch.float64)
    for j, box in enumerate(gt_boxes):
        dist = (centres - (box[:2] + box[2:]) / 2).norm(dim=1)
        cand, start = [], 0
        for n in num_level:
            order = sorted((i for i in range(start, start + n) if valid[i]),
                           key=lambda i: dist[i].item())
            cand += order[:min(topk, n)]
            start += n
        values = cost[cand, j]
        thr = values.mean() + values.std()
        for i, v in zip(cand, values):
            x, y = centres[i]
            inside = min(x - box[0], y - box[1], box[2] - x, box[3] - y) > 0.01
            if v >= thr and inside and v > best[i]:  # strictly greater: lowest gt index wins
                best[i], assigned[i] = v, j
    return assigned


def ref_focal(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = logits.sigmoid()
    pos = -0.25 * (1 - p) ** 2 * torch.log(p)
    neg = -0.75 * p ** 2 * torch.log(1 - p)
    return torch.where(target.bool(), pos, neg).sum(-1)


def ref_bce(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = logit.sigmoid()
    return -(target * torch.log(p) + (1 - target) * torch.log(1 - p))


class RefDDOD:
    """MMDetection's loss_by_feat, image by image and level by level, with its running counts."""

    def __init__(self, strides, base, topk, num_classes):
        self.strides, self.base, self.topk, self.c = strides, base, topk, num_classes
        self.counts = [0.0] * len(strides)

    def factors(self, per_image_assigned, num_level):
        bounds = [sum(num_level[:i]) for i in range(len(num_level) + 1)]
        for lvl in range(len(num_level)):
            self.counts[lvl] += sum(int((a[bounds[lvl]:bounds[lvl + 1]] >= 0).sum())
                                    for a in per_image_assigned)
        low, high = min(self.counts), max(self.counts)
        factor = [2 - (n - low) / (high - low + 1e-10) for n in self.counts]
        level = torch.cat([torch.full((n,), f, dtype=torch.float64)
                           for n, f in zip(num_level, factor)])
        return level

    def losses(self, cls_scores, bbox_preds, iou_preds, gts, pad_shapes):
        sizes = [tuple(c.shape[-2:]) for c in cls_scores]
        valid = [ref_valid(sizes, self.strides, shape) for shape in pad_shapes]
        num_level = [h * w for h, w in sizes]
        anchors = ref_anchors(sizes, self.strides, self.base)
        flat = [torch.cat([m[i].permute(1, 2, 0).reshape(-1, m.shape[1]).double() for m in maps])
                for maps in (cls_scores, bbox_preds, iou_preds)
                for i in range(cls_scores[0].shape[0])]
        n = cls_scores[0].shape[0]
        logits, deltas, ious = flat[:n], flat[n:2 * n], flat[2 * n:]
        preds = [ref_decode(anchors, d) for d in deltas]
        boxes = [g.bboxes.double() for g in gts]
        assign = {alpha: [ref_assign(anchors, num_level, v, b, g.labels, lg, p, self.topk, alpha)
                          for v, b, g, lg, p in zip(valid, boxes, gts, logits, preds)]
                  for alpha in (0.8, 0.5)}
        cls_avg = sum(max(int((a >= 0).sum()), 1) for a in assign[0.8])
        factor = self.factors(assign[0.8], num_level)
        loss_cls = 0.0
        for lg, a, g, v in zip(logits, assign[0.8], gts, valid):
            onehot = torch.zeros_like(lg)
            onehot[a >= 0, g.labels[a[a >= 0]]] = 1
            loss_cls = loss_cls + (factor * v * ref_focal(lg, onehot)).sum() / cls_avg
        reg_avg = sum(max(int((a >= 0).sum()), 1) for a in assign[0.5])
        factor = self.factors(assign[0.5], num_level)
        loss_bbox = loss_iou = 0.0
        for d, io, a, b in zip(deltas, ious, assign[0.5], boxes):
            pos = a >= 0
            if not pos.any():
                continue
            pred, target = ref_decode(anchors[pos], d[pos]), b[a[pos]]
            loss_bbox = loss_bbox + (factor[pos] * 2 * (1 - ref_giou(pred, target))).sum()
            iou_target = torch.diagonal(ref_iou(pred, target))
            loss_iou = loss_iou + (factor[pos] * ref_bce(io[pos, 0], iou_target)).sum()
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox / reg_avg, loss_iou=loss_iou / reg_avg)


# ---- tests ---------------------------------------------------------------------------------

def test_module_names_shapes_and_init():
    head = make_head(stacked_convs=2)
    head.init_weights()
    names = set(head.state_dict())
    assert {'cls_convs.1.conv.weight', 'cls_convs.1.gn.bias', 'reg_convs.0.conv.weight',
            'atss_cls.bias', 'atss_reg.weight', 'atss_iou.weight', 'scales.1.scale'} <= names
    assert head.cls_convs[0].conv.bias is None  # GN follows: no conv bias
    torch.testing.assert_close(head.atss_cls.bias, torch.full((3,), -math.log(99.0)))
    assert torch.all(head.atss_reg.bias == 0) and torch.all(head.atss_iou.bias == 0)
    feats = (torch.randn(2, 16, 6, 8), torch.randn(2, 16, 3, 4))
    cls, box, iou = head(feats)
    assert [c.shape for c in cls] == [(2, 3, 6, 8), (2, 3, 3, 4)]
    assert [b.shape for b in box] == [(2, 4, 6, 8), (2, 4, 3, 4)]
    assert [i.shape for i in iou] == [(2, 1, 6, 8), (2, 1, 3, 4)]
    head.scales[1].scale.data.fill_(0.5)
    torch.testing.assert_close(head(feats)[1][1], box[1] * 0.5)  # deltas are scaled, no exp
    # the IoU branch sits on the regression tower
    head.cls_convs[0].conv.weight.data.add_(torch.randn_like(head.cls_convs[0].conv.weight))
    torch.testing.assert_close(head(feats)[2][0], iou[0])


def test_dcn_first_conv_starts_as_the_plain_conv():
    dcn = make_head(stacked_convs=2, use_dcn=True)
    dcn.init_weights()
    shapes = {k: tuple(v.shape) for k, v in dcn.state_dict().items()}
    for tower in ('cls_convs', 'reg_convs'):
        assert shapes[f'{tower}.0.conv.conv_offset.weight'] == (18, 16, 3, 3)  # 2 x 3 x 3
        assert f'{tower}.1.conv.conv_offset.weight' not in shapes  # only the first conv
        assert torch.all(getattr(dcn, tower)[0].conv.conv_offset.weight == 0)
    plain = make_head(stacked_convs=2)
    plain.load_state_dict({k: v for k, v in dcn.state_dict().items() if 'conv_offset' not in k})
    feats = (torch.randn(1, 16, 6, 8), torch.randn(1, 16, 3, 4))
    for ours, ref in zip(dcn(feats), plain(feats)):
        for a, b in zip(ours, ref):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_bad_config_fails_early():
    with pytest.raises(ValueError, match='num_classes'):
        make_head(num_classes=0)
    with pytest.raises(ValueError, match='stacked_convs'):
        make_head(stacked_convs=0)
    with pytest.raises(KeyError, match='reg_assigner'):
        make_head(train_cfg=dict(assigner=dict(type='ATSSAssigner', topk=9, alpha=0.8)))
    head = make_head(train_cfg=None)  # an inference-only head
    with pytest.raises(ValueError, match='assigner'):
        head.loss_by_feat(*head((torch.zeros(1, 16, 2, 2),) * 2), [gt([], [])], metas(1, (16, 16)))


def hand_scene_outputs(cls_probs: dict[int, float], iou_logit: float = 0.2):
    """One level of 2 x 4 anchors (stride 8, 8 x 8 boxes centred on (8x, 8y)), 3 classes."""
    cls = torch.full((1, 3, 2, 4), -4.0)
    for anchor, prob in cls_probs.items():
        cls[0, 1, anchor // 4, anchor % 4] = math.log(prob / (1 - prob))
    box = torch.zeros(1, 4, 2, 4)
    iou = torch.full((1, 1, 2, 4), iou_logit)
    return [cls.requires_grad_()], [box.requires_grad_()], [iou.requires_grad_()]


def test_hand_worked_scene_disentangles_cls_and_reg_assignment():
    # gt (1, -3, 19, 9), label 1, centre (10, 3). The 3 nearest anchor centres: #1 (8, 0),
    # #5 (8, 8), #2 (16, 0), all inside the gt. Zero deltas: predicted box = anchor, so the
    # IoUs with the gt (area 216) are 56/224 = 1/4, 40/240 = 1/6 and 49/231 = 7/33.
    ious = {1: 1 / 4, 5: 1 / 6, 2: 7 / 33}
    probs = {1: 0.3, 5: 0.7, 2: 0.3}  # predicted probability of class 1
    for alpha, winner in ((0.8, 1), (0.5, 5)):
        cost = {a: probs[a] ** (1 - alpha) * ious[a] ** alpha for a in ious}
        values = torch.tensor(list(cost.values()), dtype=torch.float64)
        thr = values.mean() + values.std()
        assert [a for a in cost if cost[a] >= thr] == [winner]  # the hand computation itself
    head = make_head(strides=(8,), octave_base_scale=1, topk=3)
    cls, box, iou = hand_scene_outputs(probs)
    losses = head.loss_by_feat(cls, box, iou, [gt([[1, -3, 19, 9]], [1])], metas(1, (16, 32)))
    # one level: factor 2; one positive per assignment: avg_factor 1
    onehot = torch.zeros(8, 3)
    onehot[1, 1] = 1  # the classification positive is anchor #1 (alpha 0.8)...
    expected_cls = 2 * ref_focal(cls[0].detach()[0].permute(1, 2, 0).reshape(8, 3), onehot).sum()
    torch.testing.assert_close(losses['loss_cls'], expected_cls.float())
    # ...the regression positive is anchor #5 (4, 4, 12, 12): IoU 1/6, enclosing box
    # (1, -3, 19, 12) of area 270 and union 240, GIoU = 1/6 - 30/270 = 1/18.
    assert losses['loss_bbox'].item() == pytest.approx(2 * 2.0 * (1 - 1 / 18), rel=1e-5)
    expected_iou = 2 * ref_bce(torch.tensor(0.2), torch.tensor(1 / 6))
    assert losses['loss_iou'].item() == pytest.approx(expected_iou.item(), rel=1e-5)
    assert head.cls_num_pos_samples_per_level.tolist() == [2.0]  # both assignments counted


def random_outputs(sizes, num_images=3, num_classes=3):
    return ([torch.randn(num_images, num_classes, h, w, requires_grad=True) for h, w in sizes],
            [(0.5 * torch.randn(num_images, 4, h, w)).requires_grad_() for h, w in sizes],
            [torch.randn(num_images, 1, h, w, requires_grad=True) for h, w in sizes])


def random_boxes(num: int, height: float, width: float) -> list[list[float]]:
    xy = torch.rand(num, 2) * torch.tensor([width * 0.6, height * 0.6])
    wh = 6 + torch.rand(num, 2) * torch.tensor([width * 0.4, height * 0.4])
    return torch.cat([xy, xy + wh], dim=1).tolist()


def test_losses_match_per_image_reference_and_accumulate_counts():
    sizes, strides = [(6, 8), (3, 4)], [8, 16]
    head = make_head(strides=strides, octave_base_scale=2)
    ref = RefDDOD(strides, base=2, topk=9, num_classes=3)
    # the last image is smaller than the batch: anchors off its padded area are ignored
    pad_shapes = [(48, 64), (48, 64), (32, 40)]
    img_metas = [dict(img_shape=s, pad_shape=s, batch_input_shape=(48, 64)) for s in pad_shapes]
    for step in range(2):  # the level counts carry over from one batch to the next
        batch = [gt(random_boxes(3, 48, 64), [0, 2, 1]), gt([], []),
                 gt(random_boxes(2, 32, 40), [1, 1])]
        outs = random_outputs(sizes)
        losses = head.loss_by_feat(*outs, batch, img_metas)
        expected = ref.losses(*[[m.detach() for m in maps] for maps in outs], batch, pad_shapes)
        for key in ('loss_cls', 'loss_bbox', 'loss_iou'):
            assert expected[key] > 0
            assert losses[key].item() == pytest.approx(float(expected[key]), rel=1e-5), key
        assert head.cls_num_pos_samples_per_level.tolist() == ref.counts
        assert ref.counts[0] != ref.counts[1]  # the factors were not all equal


def test_empty_gt_batch_gives_finite_cls_loss_and_connected_zero_box_losses():
    head = make_head()
    outs = random_outputs([(6, 8), (3, 4)], num_images=2)
    losses = head.loss_by_feat(*outs, [gt([], []), gt([], [])], metas(2, (48, 64)))
    # no positives anywhere: every level gets factor 2, avg_factor = 1 per image = 2
    logits = torch.cat([c.detach().permute(0, 2, 3, 1).reshape(-1, 3) for c in outs[0]])
    expected = 2 * ref_focal(logits, torch.zeros_like(logits)).sum() / 2
    torch.testing.assert_close(losses['loss_cls'], expected)
    for key in ('loss_bbox', 'loss_iou'):
        assert losses[key].item() == 0.0 and losses[key].grad_fn is not None
    sum(losses.values()).backward()
    assert all(torch.all(b.grad == 0) for b in outs[1] + outs[2])


def test_predict_scores_class_times_iou_and_decodes_deltas():
    head = make_head(strides=(8,), octave_base_scale=1)
    head.eval()
    cls = torch.full((1, 3, 2, 4), -10.0)
    cls[0, 2, 1, 1] = 2.0  # anchor #5, centred (8, 8): box (4, 4, 12, 12)
    cls[0, 0, 0, 3] = 1.0  # anchor #3, centred (24, 0): box (20, -4, 28, 4)
    box = torch.zeros(1, 4, 2, 4)
    box[0, :, 1, 1] = torch.tensor([0.5, -1.0, 0.0, 0.0])  # dx = 0.05·8, dy = -0.1·8
    iou = torch.full((1, 1, 2, 4), 1.0)
    meta = dict(img_shape=(16, 32), scale_factor=(2.0, 2.0))
    (result,) = head.predict_by_feat([cls], [box], [iou], [meta], rescale=True)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert result.labels.tolist() == [2, 0]
    assert result.scores.tolist() == pytest.approx([sig(2) * sig(1), sig(1) * sig(1)], rel=1e-6)
    # #5: (4.4, 3.2, 12.4, 11.2); #3: y clipped to the 32 x 16 image; both halved (rescale)
    torch.testing.assert_close(result.bboxes, torch.tensor([[2.2, 1.6, 6.2, 5.6],
                                                           [10.0, 0.0, 14.0, 2.0]]))
