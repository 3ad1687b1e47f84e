import pytest
import torch
from mmengine.structures import InstanceData

from fcosdet.models.task_modules import pad_gt_instances


def _gt(boxes, labels, dtype=torch.float32):
    return InstanceData(bboxes=torch.tensor(boxes, dtype=dtype).reshape(-1, 4),
                        labels=torch.tensor(labels, dtype=torch.long))


def test_pads_to_largest_image():
    batch = [_gt([[1, 2, 3, 4], [5, 6, 7, 8]], [3, 1]), _gt([], []), _gt([[9, 9, 9, 9]], [2])]
    bboxes, labels, valid = pad_gt_instances(batch)
    assert bboxes.shape == (3, 2, 4) and labels.dtype == torch.long and valid.dtype == torch.bool
    assert bboxes.tolist() == [[[1, 2, 3, 4], [5, 6, 7, 8]], [[0] * 4, [0] * 4],
                               [[9, 9, 9, 9], [0] * 4]]
    assert labels.tolist() == [[3, 1], [0, 0], [2, 0]]
    assert valid.tolist() == [[True, True], [False, False], [True, False]]


def test_all_empty_gives_zero_width_and_keeps_dtype():
    bboxes, labels, valid = pad_gt_instances([_gt([], [], torch.float64), _gt([], [])])
    assert bboxes.shape == (2, 0, 4) and bboxes.dtype == torch.float64
    assert labels.shape == (2, 0) and valid.shape == (2, 0)


def test_bad_input_raises():
    with pytest.raises(ValueError, match='at least one image'):
        pad_gt_instances([])
    bad = InstanceData(bboxes=torch.zeros(2, 5), labels=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match='image 0'):
        pad_gt_instances([bad])
