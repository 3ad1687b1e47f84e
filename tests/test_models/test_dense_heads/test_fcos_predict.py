"""FCOSHead.predict_by_feat and the batched post-processing helpers on hand-built outputs."""
import math

import pytest
import torch

from fcosdet.models.dense_heads import FCOSHead
from fcosdet.models.dense_heads.dense_postprocess import rank_within_groups, select_level_candidates


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def make_head(**test_cfg) -> FCOSHead:
    return FCOSHead(num_classes=2, in_channels=8, feat_channels=8, stacked_convs=1,
                    norm_cfg=dict(type='GN', num_groups=4), strides=(8, 16),
                    regress_ranges=((-1, 64), (64, 1e8)), test_cfg=test_cfg)


def hand_outputs() -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Three images on a 32x32 input (levels 4x4 stride 8 and 2x2 stride 16).

    Images 0 and 1 share these candidates (everything else has probability sigmoid(-10)):
    - level 0 point (12, 12): class 0 logit 2, class 1 logit 1, distances 4 → box A (8, 8, 16, 16)
    - level 0 point (20, 12): class 0 logit 1.5, distances (11, 4, 1, 4) → (9, 8, 21, 16),
      IoU with A 56 / 104 = 0.538: suppressed by A's class 0 at NMS 0.5
    - level 0 point (28, 28): class 1 probability 0.04 < score_thr 0.05
    - level 1 point (24, 24): class 1 logit 0.5, centre-ness logit 2, distances (4, 4, 100, 4)
      → (20, 20, 124, 28), clipped to the image width.
    Image 2 has no candidate. All other centre-ness logits are 0 (probability 0.5).
    """
    cls = [torch.full((3, 2, 4, 4), -10.0), torch.full((3, 2, 2, 2), -10.0)]
    box = [torch.ones(3, 4, 4, 4), torch.ones(3, 4, 2, 2)]
    ctr = [torch.zeros(3, 1, 4, 4), torch.zeros(3, 1, 2, 2)]
    cls[0][:2, 0, 1, 1], cls[0][:2, 1, 1, 1] = 2.0, 1.0
    box[0][:2, :, 1, 1] = 4.0
    cls[0][:2, 0, 1, 2] = 1.5
    box[0][:2, :, 1, 2] = torch.tensor([11.0, 4.0, 1.0, 4.0])
    cls[0][:2, 1, 3, 3] = math.log(0.04 / 0.96)
    cls[1][:2, 1, 1, 1], ctr[1][:2, 0, 1, 1] = 0.5, 2.0
    box[1][:2, :, 1, 1] = torch.tensor([4.0, 4.0, 100.0, 4.0])
    return cls, box, ctr


METAS = [dict(img_shape=(28, 30), scale_factor=(2.0, 0.5)),
         dict(img_shape=(32, 32), scale_factor=(1.0, 1.0)),
         dict(img_shape=(32, 32), scale_factor=(1.0, 1.0))]
S_FAR, S_A0, S_A1, S_B0 = sig(0.5) * sig(2.0), sig(2.0) * 0.5, sig(1.0) * 0.5, sig(1.5) * 0.5
BOX_A, BOX_B = [8.0, 8.0, 16.0, 16.0], [9.0, 8.0, 21.0, 16.0]


def check(result, boxes: list[list[float]], scores: list[float], labels: list[int]) -> None:
    expected_boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    torch.testing.assert_close(result.bboxes, expected_boxes)
    torch.testing.assert_close(result.scores, torch.tensor(scores))
    assert result.labels.tolist() == labels


def test_decode_score_clip_and_class_aware_nms():
    results = make_head().predict_by_feat(*hand_outputs(), batch_img_metas=METAS)
    assert len(results) == 3
    check(results[0], [[20, 20, 30, 28], BOX_A, BOX_A], [S_FAR, S_A0, S_A1], [1, 0, 1])
    check(results[1], [[20, 20, 32, 28], BOX_A, BOX_A], [S_FAR, S_A0, S_A1], [1, 0, 1])
    check(results[2], [], [], [])


def test_looser_nms_keeps_the_overlapping_box():
    results = make_head(nms=dict(type='nms', iou_threshold=0.6)).predict_by_feat(
        *hand_outputs(), batch_img_metas=METAS)
    check(results[1], [[20, 20, 32, 28], BOX_A, BOX_B, BOX_A], [S_FAR, S_A0, S_B0, S_A1],
          [1, 0, 0, 1])


def test_rescale_divides_by_scale_factor():
    results = make_head().predict_by_feat(*hand_outputs(), batch_img_metas=METAS, rescale=True)
    check(results[0], [[10, 40, 15, 56], [4, 16, 8, 32], [4, 16, 8, 32]],
          [S_FAR, S_A0, S_A1], [1, 0, 1])


def test_max_per_img_nms_pre_and_sqrt_score():
    head = make_head()
    outs = hand_outputs()
    capped = head.predict_by_feat(*outs, batch_img_metas=METAS, cfg=dict(max_per_img=2))
    check(capped[1], [[20, 20, 32, 28], BOX_A], [S_FAR, S_A0], [1, 0])
    # nms_pre=1: level 0 keeps only its best pair (A, class 0).
    top1 = head.predict_by_feat(*outs, batch_img_metas=METAS, cfg=dict(nms_pre=1))
    check(top1[1], [[20, 20, 32, 28], BOX_A], [S_FAR, S_A0], [1, 0])
    sqrt = make_head(with_sqrt_score=True).predict_by_feat(*outs, batch_img_metas=METAS)
    check(sqrt[1], [[20, 20, 32, 28], BOX_A, BOX_A],
          [math.sqrt(S_FAR), math.sqrt(S_A0), math.sqrt(S_A1)], [1, 0, 1])


def test_missing_meta_key_is_named():
    with pytest.raises(KeyError, match='scale_factor'):
        make_head().predict_by_feat(*hand_outputs(), batch_img_metas=[
            dict(img_shape=(32, 32))] * 3, rescale=True)


def test_select_level_candidates():
    scores = torch.tensor([[[0.9, 0.01], [0.02, 0.3], [0.5, 0.04]],
                           [[0.01, 0.01], [0.01, 0.2], [0.01, 0.01]]])
    top, point_idx, labels, valid = select_level_candidates(scores, score_thr=0.05, nms_pre=3)
    torch.testing.assert_close(top[0], torch.tensor([0.9, 0.5, 0.3]))
    assert point_idx[0].tolist() == [0, 2, 1] and labels[0].tolist() == [0, 0, 1]
    assert valid.tolist() == [[True, True, True], [True, False, False]]
    assert point_idx[1, 0].item() == 1 and labels[1, 0].item() == 1
    everything = select_level_candidates(scores, score_thr=0.05, nms_pre=-1)[3]
    assert everything.shape == (2, 6) and everything.sum().item() == 4


def test_rank_within_groups():
    groups = torch.tensor([1, 0, 1, 1, 0, 2])
    assert rank_within_groups(groups).tolist() == [0, 0, 1, 2, 1, 0]
    assert rank_within_groups(torch.zeros(0, dtype=torch.long)).tolist() == []
