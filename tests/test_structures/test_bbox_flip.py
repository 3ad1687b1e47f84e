"""bbox_flip: boxes follow their flipped image (hand-worked examples)."""
import pytest
import torch

from fcosdet.structures import bbox_flip, flip_bboxes_where

# image of H=60, W=100; box x 10..30, y 20..50
BOX = torch.tensor([[10., 20., 30., 50.]])


@pytest.mark.parametrize('direction, expected', [
    ('horizontal', [70., 20., 90., 50.]),   # x -> 100 - x, x1/x2 swap
    ('vertical', [10., 10., 30., 40.]),     # y -> 60 - y
    ('diagonal', [70., 10., 90., 40.]),
])
def test_flip_hand_examples(direction, expected):
    flipped = bbox_flip(BOX, (60, 100), direction)
    assert flipped.tolist() == [expected]
    assert torch.equal(bbox_flip(flipped, (60, 100), direction), BOX)  # exact round trip


def test_per_box_images_and_directions():
    boxes = torch.tensor([[10., 20., 30., 50.], [0., 0., 4., 2.], [1., 1., 3., 3.]])
    sizes = torch.tensor([[60, 100], [10, 8], [5, 5]])
    flip_x = torch.tensor([True, False, True])
    flip_y = torch.tensor([False, True, True])
    assert flip_bboxes_where(boxes, sizes, flip_x, flip_y).tolist() == [
        [70., 20., 90., 50.], [0., 8., 4., 10.], [2., 2., 4., 4.]]


def test_bad_input():
    with pytest.raises(ValueError, match='direction'):
        bbox_flip(BOX, (60, 100), 'sideways')
    with pytest.raises(ValueError, match=r'\[K, 4\]'):
        bbox_flip(torch.zeros(4), (60, 100))
    assert bbox_flip(torch.zeros(0, 4), (60, 100)).shape == (0, 4)
