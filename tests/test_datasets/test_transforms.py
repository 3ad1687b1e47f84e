import cv2
import numpy as np
import pytest
import torch

from fcosdet.datasets.transforms import (
    LoadAnnotations,
    LoadImageFromFile,
    PackDetInputs,
    RandomChoiceResize,
    RandomFlip,
    Resize,
)
from fcosdet.registry import TRANSFORMS


def test_config_names_build_fcosdet_transforms():
    for cfg, cls in [(dict(type='LoadImageFromFile'), LoadImageFromFile),
                     (dict(type='LoadAnnotations', with_bbox=True), LoadAnnotations),
                     (dict(type='Resize', scale=(1333, 800), keep_ratio=True), Resize),
                     (dict(type='RandomFlip', prob=0.5), RandomFlip),
                     (dict(type='RandomChoiceResize', scales=[(1333, 640), (1333, 800)],
                           keep_ratio=True), RandomChoiceResize),
                     (dict(type='PackDetInputs'), PackDetInputs)]:
        assert type(TRANSFORMS.build(cfg)) is cls


@pytest.mark.parametrize('kind', ['gray', 'rgba', 'uint16'])
def test_load_image_ends_as_three_channel_uint8(tmp_path, kind):
    base = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    if kind == 'gray':
        img, expected = base, np.repeat(base[..., None], 3, axis=2)
    elif kind == 'rgba':
        bgr = np.stack([base, base // 2, 255 - base], axis=2)
        img, expected = np.concatenate([bgr, np.full_like(base, 255)[..., None]], 2), bgr
    else:
        img, expected = base.astype(np.uint16) * 256, np.repeat(base[..., None], 3, axis=2)
    path = tmp_path / f'{kind}.png'
    cv2.imwrite(str(path), img)
    for color_type in ('color', 'unchanged'):
        out = LoadImageFromFile(color_type=color_type)(dict(img_path=str(path)))
        assert out['img'].dtype == np.uint8 and out['img'].shape == (12, 10, 3)
        assert out['img_shape'] == out['ori_shape'] == (12, 10)
        np.testing.assert_array_equal(out['img'], expected)


def test_load_image_names_bad_files_and_casts_after_conversion(tmp_path):
    with pytest.raises(FileNotFoundError, match='image file not found: .*none.png'):
        LoadImageFromFile()(dict(img_path=str(tmp_path / 'none.png')))
    (tmp_path / 'bad.png').write_bytes(b'not an image')
    with pytest.raises(ValueError, match='cannot be decoded.*bad.png'):
        LoadImageFromFile()(dict(img_path=str(tmp_path / 'bad.png')))
    path = tmp_path / 'deep.png'
    cv2.imwrite(str(path), np.full((4, 5), 0x8A00, np.uint16))  # top 8 bits: 0x8A = 138
    out = LoadImageFromFile(to_float32=True, color_type='unchanged')(dict(img_path=str(path)))
    assert out['img'].dtype == np.float32 and out['img'].shape == (4, 5, 3)
    assert (out['img'] == 138.0).all()


def test_load_annotations_arrays():
    out = LoadAnnotations()(dict(instances=[
        dict(bbox=[1, 2, 3, 4], bbox_label=2, ignore_flag=0),
        dict(bbox=[5, 6, 7, 8], bbox_label=0, ignore_flag=1)]))
    assert out['gt_bboxes'].dtype == np.float32 and out['gt_bboxes'].shape == (2, 4)
    np.testing.assert_array_equal(out['gt_bboxes'], [[1, 2, 3, 4], [5, 6, 7, 8]])
    np.testing.assert_array_equal(out['gt_bboxes_labels'], np.array([2, 0], np.int64))
    np.testing.assert_array_equal(out['gt_ignore_flags'], [False, True])
    empty = LoadAnnotations()(dict(instances=[]))
    assert empty['gt_bboxes'].shape == (0, 4) and empty['gt_bboxes_labels'].shape == (0,)
    assert LoadAnnotations()(dict())['gt_ignore_flags'].shape == (0,)


def _extent(mask: np.ndarray) -> np.ndarray:
    """(x1, y1, x2, y2) pixel-edge extent of the True pixels."""
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


@pytest.mark.parametrize('scale, direction', [((128, 96), 'horizontal'), ((96, 72), 'vertical'),
                                              ((200, 150), 'diagonal')])
def test_boxes_stay_on_their_pixels_through_resize_and_flip(scale, direction):
    img = np.zeros((48, 64, 3), np.uint8)
    boxes = np.array([[5, 7, 21, 30], [40, 2, 62, 12]], np.float32)
    for channel, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        img[y1:y2, x1:x2, channel] = 255  # one channel per box: blurred edges never mix
    results = dict(img=img, img_shape=(48, 64), gt_bboxes=boxes.copy())
    results = Resize(scale=scale, keep_ratio=True)(results)
    results = RandomFlip(prob=1.0, direction=direction)(results)
    factor = scale[0] / 64
    assert results['scale_factor'] == (factor, factor)
    assert results['img_shape'] == results['img'].shape[:2] == (round(48 * factor), scale[0])
    assert results['flip'] and results['flip_direction'] == direction
    for channel, box in enumerate(results['gt_bboxes']):
        # interpolation blurs the edges by at most one pixel
        np.testing.assert_allclose(_extent(results['img'][..., channel] > 127), box, atol=1.0)


def test_random_choice_resize_picks_a_listed_scale():
    resize = TRANSFORMS.build(dict(type='RandomChoiceResize', scales=[(1333, 64), (1333, 80)],
                                   keep_ratio=True))
    assert type(resize.resize) is Resize
    shorts = set()
    for _ in range(30):
        out = resize(dict(img=np.zeros((40, 50, 3), np.uint8), gt_bboxes=np.zeros((0, 4))))
        shorts.add(out['img_shape'][0])
        assert out['scale_factor'][0] == pytest.approx(out['img_shape'][1] / 50)
    assert shorts == {64, 80}


def test_pack_det_inputs():
    img = np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    results = dict(img=img, img_id=3, img_path='x.png', ori_shape=(6, 8), img_shape=(6, 8),
                   gt_bboxes=np.array([[0, 0, 2, 2], [1, 1, 3, 3], [2, 2, 4, 4]], np.float32),
                   gt_bboxes_labels=np.array([4, 5, 6]),
                   gt_ignore_flags=np.array([False, True, False]))
    packed = PackDetInputs()(results)
    assert torch.equal(packed['inputs'], torch.from_numpy(img).permute(2, 0, 1))
    sample = packed['data_samples']
    assert torch.equal(sample.gt_instances.bboxes, torch.tensor([[0.0, 0, 2, 2], [2, 2, 4, 4]]))
    assert sample.gt_instances.labels.dtype == torch.long
    assert torch.equal(sample.gt_instances.labels, torch.tensor([4, 6]))
    assert torch.equal(sample.ignored_instances.bboxes, torch.tensor([[1.0, 1, 3, 3]]))
    assert torch.equal(sample.ignored_instances.labels, torch.tensor([5]))
    assert sample.metainfo == dict(img_id=3, img_path='x.png', ori_shape=(6, 8),
                                   img_shape=(6, 8), scale_factor=(1.0, 1.0), flip=False,
                                   flip_direction=None)
    only_id = PackDetInputs(meta_keys=('img_id',))(dict(img=img, img_id=1))['data_samples']
    assert only_id.metainfo == dict(img_id=1) and 'gt_instances' not in only_id
