"""Merging the detections of overlapping tiles: class-aware NMS versus greedy NMM (IoS)."""
import pytest
import torch

from fcosdet.models.layers.merge import merge_detections, pairwise_ios

# A (0.9) and B (0.8): B is A's top half: IoU 0.5 (NMS keeps both at > 0.5), IoS 1 (NMM merges).
# C (0.7) touches A: IoU 0.1, IoS 0.2. D (0.6) is A's box in class 1. E (0.5) covers most of C:
# intersection 11 x 10, IoU 110 / 130 = 0.846, IoS 110 / 120 = 0.917.
BOXES = torch.tensor([[0., 0., 10., 10.], [0., 0., 10., 5.], [8., 0., 20., 10.],
                      [0., 0., 10., 10.], [9., 0., 21., 10.]])
SCORES = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
LABELS = torch.tensor([0, 0, 0, 1, 0])


def _shuffled():
    perm = torch.tensor([4, 2, 0, 3, 1])  # order of the input must not matter
    return BOXES[perm], SCORES[perm], LABELS[perm]


def test_pairwise_ios_hand_worked():
    ios = pairwise_ios(BOXES)
    assert ios[0, 1] == pytest.approx(1.0) and ios[0, 2] == pytest.approx(0.2)
    assert ios[2, 4] == pytest.approx(110 / 120) and ios[4, 2] == pytest.approx(110 / 120)
    assert ios[1, 2] == pytest.approx(10 / 50)


def test_nms_keeps_partial_boxes_and_suppresses_overlap():
    bboxes, scores, labels = merge_detections(*_shuffled(), mode='nms', threshold=0.5)
    assert bboxes.tolist() == BOXES[:4].tolist()  # E suppressed by C; B kept (IoU not > 0.5)
    assert scores.tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6])
    assert labels.tolist() == [0, 0, 0, 1]


def test_nmm_merges_into_enclosing_boxes_with_best_score():
    bboxes, scores, labels = merge_detections(*_shuffled(), mode='nmm', threshold=0.5)
    assert bboxes.tolist() == [[0., 0., 10., 10.],   # A + B
                               [8., 0., 21., 10.],   # C + E
                               [0., 0., 10., 10.]]   # D, alone in class 1
    assert scores.tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert labels.tolist() == [0, 0, 1]


def test_nmm_matches_against_the_best_box_of_a_group():
    # IoS(A, B) = 20 / 60 = 0.33; IoS(B, F) = 50 / 60 = 0.83; IoS(A, F) = 10 / 60 = 0.17
    boxes = torch.tensor([[0., 0., 10., 10.], [8., 0., 14., 10.], [9., 0., 15., 10.]])
    scores, labels = torch.tensor([0.9, 0.8, 0.7]), torch.zeros(3, dtype=torch.long)
    out, _, _ = merge_detections(boxes, scores, labels, 'nmm', 0.5)
    # at 0.5: A matches nothing; B takes F -> A, B+F
    assert out.tolist() == [[0., 0., 10., 10.], [8., 0., 15., 10.]]
    out, out_scores, _ = merge_detections(boxes, scores, labels, 'nmm', 0.3)
    # at 0.3: A takes B; F does not match A, the group's best box (though it would match the
    # merged box (0, 0, 14, 10)), and B is taken -> A+B, F alone
    assert out.tolist() == [[0., 0., 14., 10.], [9., 0., 15., 10.]]
    assert out_scores.tolist() == pytest.approx([0.9, 0.7])


@pytest.mark.parametrize('mode', ['nms', 'nmm'])
def test_empty(mode):
    bboxes, scores, labels = merge_detections(torch.zeros(0, 4), torch.zeros(0),
                                              torch.zeros(0, dtype=torch.long), mode)
    assert bboxes.shape == (0, 4) and scores.shape == (0,) and labels.shape == (0,)


def test_bad_mode_and_threshold():
    with pytest.raises(ValueError, match="merge mode must be one of .* got 'wbf'"):
        merge_detections(BOXES, SCORES, LABELS, 'wbf')
    with pytest.raises(ValueError, match='threshold must be in'):
        merge_detections(BOXES, SCORES, LABELS, 'nmm', 1.5)
