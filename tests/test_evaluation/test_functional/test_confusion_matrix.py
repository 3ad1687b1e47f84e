"""Confusion matrix of hand-made detections, counted by hand (see the comments)."""
import numpy as np
import pytest

from fcosdet.evaluation.functional import (
    ImageDets,
    ImageGt,
    calculate_confusion_matrix,
    format_confusion_matrix,
    image_confusion_matrix,
    normalize_rows,
)


def gt(boxes, labels, ignore=None) -> ImageGt:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    ignore = np.zeros(len(boxes), bool) if ignore is None else np.asarray(ignore, bool)
    return ImageGt(boxes, np.asarray(labels, np.int64), ignore)


def dets(boxes, scores, labels) -> ImageDets:
    return ImageDets(np.asarray(boxes, np.float64).reshape(-1, 4),
                     np.asarray(scores, np.float64), np.asarray(labels, np.int64))


# Two classes: 0 (cat), 1 (dog); index 2 is background.
PAIRS = [
    # image 1: gt A (cat), B (dog), crowd C (cat, ignored)
    (dets([[0, 0, 10, 10],      # d1 cat .9: IoU(A) = 1          -> [cat, cat]
           [1, 0, 11, 10],      # d2 dog .8: IoU(A) = 90/110      -> [cat, dog]
           [20, 0, 30, 10],     # d3 cat .2: below score_thr 0.3  -> nothing
           [60, 0, 70, 10],     # d4 dog .7: overlaps nothing     -> [bg, dog]
           [40, 0, 50, 10]],    # d5 cat .6: overlaps the crowd box only -> nothing
          [0.9, 0.8, 0.2, 0.7, 0.6], [0, 1, 0, 1, 0]),
     gt([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], [0, 1, 0], [0, 0, 1])),
    # B has no dog detection over it -> [dog, bg]; the crowd box is never missed
    # image 2: gt D (dog); two dog detections over it count twice
    (dets([[0, 0, 20, 10], [0, 0, 20, 20]], [0.5, 0.4], [1, 1]),  # IoU 0.5 and 1
     gt([[0, 0, 20, 20]], [1])),                                    # -> [dog, dog] x 2
    # image 3: no gt; a cat detection -> [bg, cat]
    (dets([[0, 0, 5, 5]], [0.95], [0]), gt(np.zeros((0, 4)), [])),
    # image 4: identical cat and dog gt boxes; one cat detection over both
    (dets([[0, 0, 10, 10]], [0.9], [0]),
     gt([[0, 0, 10, 10], [0, 0, 10, 10]], [0, 1])),   # -> [cat, cat], [dog, cat], [dog, bg]
]
EXPECTED = np.array([[2, 1, 0],
                     [1, 2, 2],
                     [1, 1, 0]])


def test_hand_counted_matrix():
    matrix = calculate_confusion_matrix(PAIRS, num_classes=2, score_thr=0.3, tp_iou_thr=0.5)
    np.testing.assert_array_equal(matrix, EXPECTED)
    assert matrix.dtype == np.int64


def test_thresholds_move_the_counts():
    # score_thr 0.1 lets d3 (cat over dog gt B) in: [dog, cat] + 1; B is still missed
    low = calculate_confusion_matrix(PAIRS, 2, score_thr=0.1, tp_iou_thr=0.5)
    np.testing.assert_array_equal(low - EXPECTED, [[0, 0, 0], [1, 0, 0], [0, 0, 0]])
    # tp_iou_thr 0.6: image 2's IoU-0.5 detection becomes a background false positive
    strict = calculate_confusion_matrix(PAIRS, 2, score_thr=0.3, tp_iou_thr=0.6)
    np.testing.assert_array_equal(strict - EXPECTED, [[0, 0, 0], [0, -1, 0], [0, 1, 0]])


def test_empty_image_and_no_detections():
    empty = image_confusion_matrix(dets(np.zeros((0, 4)), [], []), gt(np.zeros((0, 4)), []), 3)
    np.testing.assert_array_equal(empty, np.zeros((4, 4)))
    missed = image_confusion_matrix(dets(np.zeros((0, 4)), [], []),
                                    gt([[0, 0, 4, 4], [5, 5, 9, 9]], [2, 0]), 3)
    assert missed[2, 3] == 1 and missed[0, 3] == 1 and missed.sum() == 2


def test_normalize_and_format():
    percent = normalize_rows(EXPECTED)
    np.testing.assert_allclose(percent[0], [200 / 3, 100 / 3, 0])
    np.testing.assert_allclose(percent[1], [20, 40, 40])
    np.testing.assert_allclose(normalize_rows(np.zeros((2, 2)))[0], [0, 0])
    text = format_confusion_matrix(EXPECTED, ['cat', 'dog']).splitlines()
    assert text[0].split() == ['gt', '\\', 'pred', 'cat', 'dog', 'background']
    assert text[2].split() == ['dog', '1', '2', '2']
    assert text[3].split() == ['background', '1', '1', '0']


@pytest.mark.parametrize('seed', [0, 1])
def test_matches_a_per_pair_reference(seed):
    """Random images against a direct loop over (detection, gt) pairs (MMDetection's loops)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(5):
        xy = rng.uniform(0, 40, (6, 2))
        g = gt(np.hstack([xy, xy + rng.uniform(5, 20, (6, 2))]), rng.integers(0, 3, 6),
               rng.random(6) < 0.2)
        jitter = g.bboxes[rng.integers(0, 6, 12)] + rng.normal(0, 2, (12, 4))
        pairs.append((dets(jitter, rng.random(12), rng.integers(0, 3, 12)), g))
    expected = np.zeros((4, 4), np.int64)
    for d, g in pairs:
        def iou(a, b):
            w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = w * h
            return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
        hit = np.zeros(len(g.labels), bool)
        for box, score, label in zip(d.bboxes, d.scores, d.labels):
            if score < 0.3:
                continue
            overlaps_any = False
            for j, (gbox, glabel, ign) in enumerate(zip(g.bboxes, g.labels, g.ignore)):
                if iou(box, gbox) >= 0.5:
                    overlaps_any = True
                    if not ign:
                        expected[glabel, label] += 1
                        hit[j] |= glabel == label
            if not overlaps_any:
                expected[3, label] += 1
        for glabel, h, ign in zip(g.labels, hit, g.ignore):
            if not h and not ign:
                expected[glabel, 3] += 1
    np.testing.assert_array_equal(calculate_confusion_matrix(pairs, 3), expected)
