"""FCOSHead: init, forward scaling, losses on hand-worked targets."""
import math

import pytest
import torch
from mmengine.structures import InstanceData

import fcosdet.models.dense_heads.dense_utils as dense_utils_module
from fcosdet.models.dense_heads import FCOSHead
from fcosdet.structures import DetDataSample

GN8 = dict(type='GN', num_groups=8, requires_grad=True)
TWO_LEVELS = dict(strides=(8, 16), regress_ranges=((-1, 64), (64, 1e8)))


@pytest.fixture(autouse=True)
def seed() -> None:
    torch.manual_seed(0)


def make_head(**kwargs) -> FCOSHead:
    cfg = dict(num_classes=2, in_channels=16, feat_channels=16, stacked_convs=1, norm_cfg=GN8)
    cfg.update(kwargs)
    return FCOSHead(**cfg)


def gt(boxes: list[list[float]], labels: list[int]) -> InstanceData:
    return InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        labels=torch.tensor(labels, dtype=torch.long))


def ref_focal(logits: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """Independent sigmoid focal loss, alpha 0.25, gamma 2 (summed)."""
    p = torch.sigmoid(logits)
    pos = -0.25 * (1 - p) ** 2 * torch.log(p)
    neg = -0.75 * p ** 2 * torch.log(1 - p)
    return torch.where(onehot.bool(), pos, neg).sum()


def test_init_values_and_module_names():
    head = FCOSHead(num_classes=3, in_channels=64, feat_channels=64, stacked_convs=2,
                    norm_cfg=GN8)
    head.init_weights()
    weight = head.cls_convs[1].conv.weight
    assert abs(weight.std().item() - 0.01) < 5e-4
    assert abs(weight.mean().item()) < 5e-4
    torch.testing.assert_close(head.conv_cls.bias, torch.full((3,), -math.log(99.0)))
    assert torch.all(head.conv_reg.bias == 0) and torch.all(head.conv_centerness.bias == 0)
    assert head.cls_convs[0].conv.bias is None  # conv_bias='auto' with GN: no bias
    assert [s.scale.item() for s in head.scales] == [1.0] * 5
    names = set(head.state_dict())
    assert {'cls_convs.1.gn.weight', 'reg_convs.0.conv.weight', 'scales.4.scale',
            'conv_centerness.weight'} <= names
    biased = make_head(conv_bias=True)
    assert biased.cls_convs[0].conv.bias.shape == (16,)


def test_config_dicts_are_not_mutated_and_bad_values_fail():
    loss_cls = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0)
    test_cfg = dict(score_thr=0.1, nms=dict(type='nms', iou_threshold=0.6))
    make_head(loss_cls=loss_cls, test_cfg=test_cfg)
    assert loss_cls['type'] == 'FocalLoss' and test_cfg == dict(
        score_thr=0.1, nms=dict(type='nms', iou_threshold=0.6))
    with pytest.raises(KeyError, match='score_threshold'):
        make_head(test_cfg=dict(score_threshold=0.1))
    with pytest.raises(ValueError, match='regress_ranges'):
        make_head(strides=(8, 16))
    with pytest.raises(ValueError, match='num_classes'):
        make_head(num_classes=0)


@pytest.mark.parametrize('norm_on_bbox', [False, True])
def test_forward_distance_scaling(norm_on_bbox):
    head = make_head(norm_on_bbox=norm_on_bbox, **TWO_LEVELS)
    torch.nn.init.zeros_(head.conv_reg.weight)
    torch.nn.init.constant_(head.conv_reg.bias, 2.0)
    head.scales[1].scale.data.fill_(0.5)
    feats = (torch.randn(2, 16, 4, 4), torch.randn(2, 16, 2, 2))
    cls, box, ctr = head(feats)
    assert [c.shape for c in cls] == [(2, 2, 4, 4), (2, 2, 2, 2)]
    assert [c.shape for c in ctr] == [(2, 1, 4, 4), (2, 1, 2, 2)]
    train = [b.unique().tolist() for b in box]
    head.eval()
    test = [b.unique().tolist() for b in head(feats)[1]]
    if norm_on_bbox:  # relu(s*x) in stride units while training, pixels at test
        assert train == [[2.0], [1.0]] and test == [[16.0], [16.0]]
    else:
        assert train == test == [[pytest.approx(math.exp(2.0))], [pytest.approx(math.exp(1.0))]]


@pytest.mark.parametrize('on_reg', [False, True])
def test_centerness_branch_follows_the_chosen_tower(on_reg):
    head = make_head(centerness_on_reg=on_reg)
    feats = (torch.randn(1, 16, 4, 4), ) * 5
    before = head(feats)[2][0].clone()
    head.cls_convs[0].conv.weight.data.add_(torch.randn(16, 16, 3, 3))  # GN: not a rescale
    after = head(feats)[2][0]
    assert torch.allclose(before, after) == on_reg


def outputs_for(sizes: list[tuple[int, int]], num_images: int, num_classes: int = 2,
                cls_logit: float = -2.0, distance: float = 8.0, ctr_logit: float = 0.3):
    def maps(channels: int, value: float) -> list[torch.Tensor]:
        return [torch.full((num_images, channels, h, w), value, requires_grad=True)
                for h, w in sizes]
    return maps(num_classes, cls_logit), maps(4, distance), maps(1, ctr_logit)


def test_empty_gt_gives_graph_connected_zero_box_losses():
    head = make_head(**TWO_LEVELS)
    cls, box, ctr = outputs_for([(4, 4), (2, 2)], num_images=2)
    losses = head.loss_by_feat(cls, box, ctr, [gt([], []), gt([], [])])
    # No positives: num_pos clamps to 1, every point of both images is a negative.
    expected_cls = ref_focal(torch.full((2 * 20, 2), -2.0), torch.zeros(2 * 20, 2))
    torch.testing.assert_close(losses['loss_cls'], expected_cls)
    for key in ('loss_bbox', 'loss_centerness'):
        assert losses[key].item() == 0.0 and losses[key].grad_fn is not None
    sum(losses.values()).backward()
    assert box[0].grad is not None and torch.all(box[0].grad == 0)


def test_one_box_hand_case():
    """Box (2, 2, 30, 26) on a 32x32 image, strides 8 and 16.

    Level 0 points sit at 4, 12, 20, 28: strictly inside are x in {4, 12, 20, 28} and
    y in {4, 12, 20}, all with max distance <= 26 < 64, so 12 positives. Level 1 points (8, 24)
    inside the box have max distance < 64, outside its range (64, 1e8): none.
    """
    head = make_head(**TWO_LEVELS)
    cls, box, ctr = outputs_for([(4, 4), (2, 2)], num_images=2)
    # The second image has no gt: positives (and num_pos) come from image 0 only.
    losses = head.loss_by_feat(cls, box, ctr, [gt([[2, 2, 30, 26]], [1]), gt([], [])])

    pos = [(x, y) for y in (4, 12, 20) for x in (4, 12, 20, 28)]
    ltrb = torch.tensor([[x - 2, y - 2, 30 - x, 26 - y] for x, y in pos], dtype=torch.float32)
    ctr_t = torch.sqrt(torch.minimum(ltrb[:, 0], ltrb[:, 2]) / torch.maximum(ltrb[:, 0], ltrb[:, 2])
                       * torch.minimum(ltrb[:, 1], ltrb[:, 3])
                       / torch.maximum(ltrb[:, 1], ltrb[:, 3]))
    num_pos = 12.0

    onehot = torch.zeros(2 * 20, 2)
    for x, y in pos:  # level 0 row-major index of image 0
        onehot[((y - 4) // 8) * 4 + (x - 4) // 8, 1] = 1
    expected_cls = ref_focal(torch.full((40, 2), -2.0), onehot) / num_pos
    torch.testing.assert_close(losses['loss_cls'], expected_cls)

    p = torch.sigmoid(torch.tensor(0.3))
    bce = -(ctr_t * torch.log(p) + (1 - ctr_t) * torch.log(1 - p))
    torch.testing.assert_close(losses['loss_centerness'], bce.sum() / num_pos)

    # Predicted distances are all 8: IoU of two boxes around the same point.
    pred = torch.full_like(ltrb, 8.0)
    overlap = torch.minimum(ltrb, pred)
    inter = (overlap[:, 0] + overlap[:, 2]) * (overlap[:, 1] + overlap[:, 3])
    union = 16 * 16 + (ltrb[:, 0] + ltrb[:, 2]) * (ltrb[:, 1] + ltrb[:, 3]) - inter
    iou_loss = -torch.log(inter / union)
    torch.testing.assert_close(losses['loss_bbox'], (iou_loss * ctr_t).sum() / ctr_t.sum())


def test_loss_from_data_samples_ignores_crowd_boxes():
    head = make_head(**TWO_LEVELS)
    feats = (torch.randn(1, 16, 4, 4), torch.randn(1, 16, 2, 2))
    sample = DetDataSample(metainfo=dict(img_shape=(32, 32)))
    sample.gt_instances = gt([], [])
    sample.ignored_instances = gt([[2, 2, 30, 26]], [0])
    losses = head.loss(feats, [sample])
    assert losses['loss_bbox'].item() == 0.0 and losses['loss_centerness'].item() == 0.0

    sample.gt_instances = gt([[2, 2, 30, 26]], [0])
    losses = head.loss(feats, [sample])
    assert losses['loss_bbox'].item() > 0 and losses['loss_centerness'].item() > 0
    cls, box, ctr = head(feats)
    # loss() must be exactly loss_by_feat on the head's own outputs.
    direct = head.loss_by_feat(cls, box, ctr, [sample.gt_instances])
    for key, value in direct.items():
        torch.testing.assert_close(losses[key], value)


def test_norm_on_bbox_targets_use_stride_units():
    """With norm_on_bbox the box loss sees distances in stride units (IoU is scale-free)."""
    head = make_head(norm_on_bbox=True, **TWO_LEVELS)
    cls, box, ctr = outputs_for([(4, 4), (2, 2)], num_images=1, distance=1.0)
    losses = head.loss_by_feat(cls, box, ctr, [gt([[2, 2, 30, 26]], [0])])
    # Predicting 1 stride = 8 px everywhere equals the pixel case with distance 8.
    plain = make_head(**TWO_LEVELS)
    cls8, box8, ctr8 = outputs_for([(4, 4), (2, 2)], num_images=1, distance=8.0)
    ref = plain.loss_by_feat(cls8, box8, ctr8, [gt([[2, 2, 30, 26]], [0])])
    for key in ('loss_cls', 'loss_bbox', 'loss_centerness'):
        torch.testing.assert_close(losses[key], ref[key])


def test_normalisers_are_averaged_over_ranks(monkeypatch):
    """Two ranks where the other one has no positives: num_pos and the centre-ness sum halve."""
    head = make_head(**TWO_LEVELS)
    gts = [gt([[2, 2, 30, 26]], [1])]
    single = head.loss_by_feat(*outputs_for([(4, 4), (2, 2)], num_images=1), gts)

    def all_reduce_with_empty_rank(value: torch.Tensor, op: str) -> None:
        assert op == 'mean'
        value.mul_(0.5)

    monkeypatch.setattr(dense_utils_module, 'get_world_size', lambda: 2)
    monkeypatch.setattr(dense_utils_module, 'all_reduce', all_reduce_with_empty_rank)
    averaged = head.loss_by_feat(*outputs_for([(4, 4), (2, 2)], num_images=1), gts)
    for key in ('loss_cls', 'loss_bbox', 'loss_centerness'):
        torch.testing.assert_close(averaged[key], 2 * single[key])
