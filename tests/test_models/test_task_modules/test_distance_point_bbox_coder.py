import pytest
import torch

from fcosdet.registry import TASK_UTILS


def _coder(**kwargs):
    return TASK_UTILS.build(dict(type='DistancePointBBoxCoder', **kwargs))


def test_encode_hand_values_and_max_dis_clamp():
    coder = _coder()
    points = torch.tensor([[5.0, 5.0], [0.0, 30.0]])
    boxes = torch.tensor([[1.0, 2.0, 10.0, 20.0], [1.0, 2.0, 10.0, 20.0]])
    assert coder.encode(points, boxes).tolist() == [[4, 3, 5, 15], [-1, 28, 10, -10]]
    clamped = coder.encode(points, boxes, max_dis=10, eps=0.5)
    assert clamped.tolist() == [[4, 3, 5, 9.5], [0, 9.5, 9.5, 0]]


def test_round_trip_and_broadcast():
    torch.manual_seed(0)
    coder = _coder(clip_border=False)
    points = torch.rand(7, 2) * 50
    distances = torch.rand(3, 7, 4) * 20
    boxes = coder.decode(points, distances)
    assert boxes.shape == (3, 7, 4)
    assert torch.allclose(boxes[1, 2], torch.cat([points[2] - distances[1, 2, :2],
                                                  points[2] + distances[1, 2, 2:]]))
    assert torch.allclose(coder.encode(points, boxes), distances, atol=1e-5)


def test_decode_clipping_shared_and_per_image():
    points = torch.tensor([[5.0, 5.0]])
    distances = torch.tensor([[[10.0, 1.0, 20.0, 3.0]], [[1.0, 10.0, 2.0, 30.0]]])
    shared = _coder().decode(points, distances, max_shape=(12, 16))
    assert shared.tolist() == [[[0, 4, 16, 8]], [[4, 0, 7, 12]]]
    per_image = _coder().decode(points, distances, max_shape=torch.tensor([[100, 15], [20, 100]]))
    assert per_image.tolist() == [[[0, 4, 15, 8]], [[4, 0, 7, 20]]]
    unclipped = _coder(clip_border=False).decode(points, distances, max_shape=(12, 16))
    assert unclipped.tolist() == [[[-5, 4, 25, 8]], [[4, -5, 7, 35]]]


def test_decode_bad_max_shape_raises():
    with pytest.raises(ValueError, match='max_shape'):
        _coder().decode(torch.zeros(1, 2), torch.zeros(2, 1, 4), max_shape=torch.zeros(3, 2))
