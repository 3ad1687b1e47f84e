"""Large-scale-jitter transforms: RandomResize, RandomCrop, FilterAnnotations (hand-worked)."""
import numpy as np
import pytest

from fcosdet.datasets.transforms import FilterAnnotations, RandomCrop, RandomResize, Resize
from fcosdet.registry import TRANSFORMS


def _coded_image(h: int, w: int) -> np.ndarray:
    """Pixel (y, x) holds (y, x, 0): a crop tells its own offset."""
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([ys, xs, np.zeros_like(ys)], axis=2).astype(np.uint8)


def test_random_resize_draws_the_ratio_and_builds_fcosdet_resize():
    resize = TRANSFORMS.build(dict(type='RandomResize', scale=(100, 100),
                                   ratio_range=(0.5, 0.5), keep_ratio=True))
    assert isinstance(resize, RandomResize) and isinstance(resize.resize, Resize)
    boxes = np.array([[6, 12, 30, 24]], np.float32)
    out = resize(dict(img=np.zeros((40, 60, 3), np.uint8), img_shape=(40, 60),
                      gt_bboxes=boxes.copy()))
    # target 50 x 50; keep_ratio: factor min(50 / 60, 50 / 40) = 5 / 6 -> 50 x 33 (w x h)
    assert out['img'].shape[:2] == (33, 50)
    np.testing.assert_allclose(out['gt_bboxes'], [[5, 12 * 33 / 40, 25, 24 * 33 / 40]],
                               rtol=1e-5)


@pytest.mark.parametrize('seed', range(6))
def test_absolute_range_crop_shifts_clips_and_drops_boxes(seed):
    np.random.seed(seed)
    boxes = np.array([[0, 0, 3, 2],      # top-left corner
                      [5, 3, 8, 6],      # bottom-right corner
                      [2, 1, 6, 5]],     # centre
                     np.float32)
    results = dict(img=_coded_image(6, 8), img_shape=(6, 8), gt_bboxes=boxes.copy(),
                   gt_bboxes_labels=np.array([0, 1, 2]), gt_ignore_flags=np.array([0, 0, 1]) > 0)
    out = RandomCrop(crop_size=(4, 5), crop_type='absolute_range', allow_negative_crop=True)(
        results)
    crop_h, crop_w = out['img'].shape[:2]
    top, left = int(out['img'][0, 0, 0]), int(out['img'][0, 0, 1])
    assert 4 <= crop_h <= 5 and 4 <= crop_w <= 5 and out['img_shape'] == (crop_h, crop_w)
    np.testing.assert_array_equal(out['img'], _coded_image(6, 8)[top:top + crop_h,
                                                                 left:left + crop_w])
    shifted = boxes - [left, top, left, top]
    clipped = np.stack([shifted[:, 0].clip(0, crop_w), shifted[:, 1].clip(0, crop_h),
                        shifted[:, 2].clip(0, crop_w), shifted[:, 3].clip(0, crop_h)], 1)
    # a box is kept when it overlaps the window
    kept = [i for i, (x1, y1, x2, y2) in enumerate(shifted)
            if x1 < crop_w and x2 > 0 and y1 < crop_h and y2 > 0]
    np.testing.assert_array_equal(out['gt_bboxes'], clipped[kept])
    np.testing.assert_array_equal(out['gt_bboxes_labels'], np.array([0, 1, 2])[kept])
    np.testing.assert_array_equal(out['gt_ignore_flags'], np.array([0, 0, 1])[kept] > 0)


def test_crop_without_boxes_inside_is_dropped_unless_allowed():
    results = dict(img=_coded_image(4, 8), gt_bboxes=np.array([[7.5, 0, 8, 1]], np.float32),
                   gt_bboxes_labels=np.array([3]))
    np.random.seed(0)  # 'absolute' (w, h) = (4, 4): offset 0..4; the box needs offset 4
    outcomes = {RandomCrop(crop_size=(4, 4))(dict(results)) is None for _ in range(30)}
    assert outcomes == {True, False}
    np.random.seed(0)
    for _ in range(30):
        out = RandomCrop(crop_size=(4, 4), allow_negative_crop=True)(dict(results))
        assert out['gt_bboxes'].shape[0] == int(out['img'][0, 0, 1] == 4)


def test_filter_annotations_keeps_boxes_above_the_minimum():
    boxes = np.array([[0, 0, 5, 5], [1, 1, 1.005, 4], [2, 2, 6, 2.02]], np.float32)
    out = FilterAnnotations(min_gt_bbox_wh=(1e-2, 1e-2))(dict(
        gt_bboxes=boxes, gt_bboxes_labels=np.array([0, 1, 2]),
        gt_ignore_flags=np.array([False, True, False])))
    np.testing.assert_array_equal(out['gt_bboxes'], boxes[[0, 2]])
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [0, 2])
    np.testing.assert_array_equal(out['gt_ignore_flags'], [False, False])
    only_slivers = dict(gt_bboxes=boxes[1:2], gt_bboxes_labels=np.array([1]))
    assert FilterAnnotations(min_gt_bbox_wh=(1e-2, 1e-2))(dict(only_slivers)) is None
    kept = FilterAnnotations(min_gt_bbox_wh=(1e-2, 1e-2), keep_empty=False)(dict(only_slivers))
    assert kept['gt_bboxes'].shape == (0, 4)
    empty = dict(gt_bboxes=np.zeros((0, 4), np.float32))
    assert FilterAnnotations()(empty) is empty
