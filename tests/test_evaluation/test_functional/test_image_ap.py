"""Per-image mAP (MMDetection's analyze_results ranking) of a hand-made image, by hand."""
import math

import numpy as np
import pytest

from fcosdet.evaluation.functional import ImageDets, ImageGt, image_map, rank_images, voc_area_ap

# class 0: G1, G2 and an ignored crowd box G4; class 1: G3
GT = ImageGt(np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [0, 20, 10, 30]],
                      np.float64),
             np.array([0, 0, 0, 1]), np.array([False, False, True, False]))
DETS = ImageDets(
    np.array([[0, 0, 10, 10],     # a cat .9: G1, IoU 1 -> TP
              [0, 0, 10, 10],     # b cat .8: G1 again -> FP
              [40, 0, 50, 10],    # c cat .7: the ignored box -> neither
              [20, 0, 30, 7.8],   # e cat .6: G2, IoU 0.78 -> TP up to IoU 0.75, FP above
              [60, 60, 70, 70],   # g dog .95: nothing -> FP
              [0, 20, 10, 30],    # f dog .3: G3 -> TP
              [0, 0, 5, 5]],      # bird .99: no bird gt -> not counted
             np.float64),
    np.array([0.9, 0.8, 0.7, 0.6, 0.95, 0.3, 0.99]), np.array([0, 0, 0, 0, 1, 1, 2]))


def test_voc_area_ap_by_hand():
    # recall .5 .5 .5 1 / precision 1 .5 .5 2/3: 0.5 * 1 + 0.5 * 2/3
    ap = voc_area_ap(np.array([[0.5, 0.5, 0.5, 1.0]]), np.array([[1, 0.5, 0.5, 2 / 3]]))
    assert ap == pytest.approx([0.5 + 1 / 3])
    assert voc_area_ap(np.zeros((2, 0)), np.zeros((2, 0))).tolist() == [0, 0]


def test_image_map_by_hand():
    # cat at IoU <= 0.75 (6 thresholds): a TP, b FP, c -, e TP -> AP 5/6 (see above)
    #        at IoU >= 0.80 (4 thresholds): e FP -> recall stays 0.5 -> AP 0.5
    # dog: g FP then f TP -> recall 0 then 1 at precision 1/2 -> AP 0.5 at every threshold
    # bird: no gt, not counted
    expected = (6 * (5 / 6 + 0.5) / 2 + 4 * (0.5 + 0.5) / 2) / 10
    assert expected == pytest.approx(0.6)
    assert image_map(DETS, GT) == pytest.approx(expected)
    # at IoU 0.5 only: (5/6 + 1/2) / 2
    assert image_map(DETS, GT, iou_thrs=np.array([0.5])) == pytest.approx(2 / 3)


def test_perfect_empty_and_no_gt_images():
    perfect = ImageDets(GT.bboxes, np.ones(4), GT.labels)
    assert image_map(perfect, GT) == pytest.approx(1.0)
    none = ImageDets(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))
    assert image_map(none, GT) == 0.0
    only_crowd = ImageGt(GT.bboxes[2:3], GT.labels[2:3], GT.ignore[2:3])
    assert math.isnan(image_map(DETS, only_crowd))


def test_rank_images_skips_nan_and_keeps_order_of_ties():
    maps = np.array([0.5, np.nan, 0.9, 0.1, 0.5, 0.0])
    best, worst = rank_images(maps, 3)
    assert best.tolist() == [2, 0, 4]
    assert worst.tolist() == [5, 3, 0]
    best, worst = rank_images(maps, 10)
    assert sorted(best.tolist()) == [0, 2, 3, 4, 5] and len(worst) == 5
