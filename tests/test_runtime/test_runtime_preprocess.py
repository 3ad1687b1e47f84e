"""The runtime resizes and pads exactly as fcosdet's test pipeline (mmcv's Resize) and data
preprocessor, pixel for pixel."""
import numpy as np
import pytest
import torch
from fcosdet_runtime import ModelMeta, pad_batch, padded_size, rescale_size, resize_image
from mmengine.registry import DefaultScope

from fcosdet.registry import MODELS, TRANSFORMS
from fcosdet.utils import register_all_modules


def test_rescale_size_hand_worked():
    # COCO's 640 x 480 into (1333, 800): factor min(1333/640, 800/480) = 5/3 -> 1066.67 -> 1067
    assert rescale_size(640, 480, (1333, 800)) == (1067, 800)
    # long side limits: 2000 x 500 -> factor min(1333/2000, 800/500) = 0.6665 -> 1333 x 333
    assert rescale_size(2000, 500, (1333, 800)) == (1333, 333)
    # portrait: 480 x 640 -> factor 5/3 -> 800 x 1067; the scale's order does not matter
    assert rescale_size(480, 640, (800, 1333)) == (800, 1067)
    # round half up: 3 x 2 into (9, 5) -> factor 2.5 -> 7.5 -> 8, 5
    assert rescale_size(3, 2, (9, 5)) == (8, 5)


def _mmcv_resize(img: np.ndarray, **resize_cfg) -> dict:
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('fcosdet'):
        resize = TRANSFORMS.build(dict(type='Resize', **resize_cfg))
    return resize(dict(img=img.copy(), img_shape=img.shape[:2], ori_shape=img.shape[:2]))


@pytest.mark.parametrize('keep_ratio,interpolation', [(True, 'bilinear'), (False, 'bilinear'),
                                                      (True, 'bicubic'), (True, 'area')])
def test_resize_equals_mmcv_resize(keep_ratio, interpolation):
    rng = np.random.default_rng(0)
    meta = ModelMeta(kind='end2end', classes=('a',), scale=(96, 64), keep_ratio=keep_ratio,
                     interpolation=interpolation)
    # down- and upscaling, both orientations, sizes whose rounding lands near .5
    for h, w in [(120, 180), (150, 100), (33, 47), (64, 96), (257, 31), (7, 13), (481, 641)]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        expected = _mmcv_resize(img, scale=(96, 64), keep_ratio=keep_ratio,
                                interpolation=interpolation)
        resized, factor = resize_image(img, meta)
        assert resized.shape[:2] == expected['img_shape']
        np.testing.assert_array_equal(resized, expected['img'])
        assert factor == expected['scale_factor']


def test_padding_equals_data_preprocessor():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
              for h, w in [(64, 43), (50, 96), (33, 70)]]
    size = padded_size([img.shape[:2] for img in images], 32)
    assert size == (64, 96)
    batch, shapes = pad_batch(images, size)
    # the PyTorch path without normalisation: stack, pad with 0 to a multiple of 32
    preprocessor = MODELS.build(dict(type='DetDataPreprocessor', pad_size_divisor=32))
    expected = preprocessor(dict(inputs=[torch.from_numpy(i.transpose(2, 0, 1).copy())
                                         for i in images]))['inputs']
    np.testing.assert_array_equal(batch, expected.numpy())
    assert batch.dtype == np.float32 and shapes.dtype == np.float32
    np.testing.assert_array_equal(shapes, [[64, 43], [50, 96], [33, 70]])
    assert padded_size([(65, 10), (1, 97)], 32) == (96, 128)
    with pytest.raises(ValueError, match='does not fit .* 32 x 32'):
        pad_batch(images, (32, 32))
