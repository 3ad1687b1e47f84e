"""Resize and pad images as fcosdet's test pipeline does, with OpenCV and numpy only.

The test pipeline's ``Resize`` is MMCV's: with ``keep_ratio`` the image is scaled by
``min(max(scale) / max(h, w), min(scale) / min(h, w))`` and each side rounded as
``int(side * factor + 0.5)``; without it, it is resized to ``scale``. Both use ``cv2.resize``
with the named interpolation, and the scale factor recorded is ``(new_w / w, new_h / h)``.
The data preprocessor then pads each image at the bottom/right to the batch's size, rounded up
to ``pad_size_divisor``.

Shape letters: N images, H/W height/width.
"""
import math
from collections.abc import Sequence

import cv2
import numpy as np

from .metadata import ModelMeta

CV2_INTERPOLATIONS = {'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR,
                      'bicubic': cv2.INTER_CUBIC, 'area': cv2.INTER_AREA,
                      'lanczos': cv2.INTER_LANCZOS4}


def rescale_size(width: int, height: int, scale: tuple[int, int]) -> tuple[int, int]:
    """``(new_w, new_h)`` of a keep-ratio rescale into ``scale`` (MMCV's rounding).

    The long side becomes at most ``max(scale)``, the short side at most ``min(scale)``.
    """
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(width * float(factor) + 0.5), int(height * float(factor) + 0.5)


def check_image(img: object) -> np.ndarray:
    """The image if it is a BGR ``uint8 [H, W, 3]`` array; ValueError naming what it is."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 \
            or img.shape[2] != 3 or min(img.shape[:2]) == 0:
        desc = (f'shape {tuple(img.shape)} {img.dtype}' if isinstance(img, np.ndarray)
                else type(img).__name__)
        raise ValueError(f'an image must be a non-empty BGR uint8 H x W x 3 array, got {desc}')
    return img


def resize_image(img: np.ndarray, meta: ModelMeta) -> tuple[np.ndarray, tuple[float, float]]:
    """Resize a BGR image as the test pipeline's ``Resize``.

    Args:
        img: BGR ``uint8 [H, W, 3]``.
        meta: The file's metadata (``scale``, ``keep_ratio``, ``interpolation``); no
            ``scale``: the image as it is.

    Returns:
        The resized ``uint8 [H', W', 3]`` and the scale factor ``(W' / W, H' / H)``.
    """
    height, width = check_image(img).shape[:2]
    if meta.scale is None:  # no Resize in the test pipeline
        return img, (1.0, 1.0)
    if meta.keep_ratio:
        size = rescale_size(width, height, meta.scale)
    else:
        size = meta.scale
    resized = cv2.resize(img, size, interpolation=CV2_INTERPOLATIONS[meta.interpolation])
    return resized, (size[0] / width, size[1] / height)


def padded_size(shapes: Sequence[tuple[int, int]], divisor: int) -> tuple[int, int]:
    """``(H, W)`` of a batch: the largest height and width, rounded up to ``divisor``."""
    height = max(h for h, _ in shapes)
    width = max(w for _, w in shapes)
    return math.ceil(height / divisor) * divisor, math.ceil(width / divisor) * divisor


def pad_batch(images: Sequence[np.ndarray], size: tuple[int, int]) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """Stack resized images top-left into a zero-padded batch.

    Args:
        images: N resized BGR ``uint8 [H_n, W_n, 3]``.
        size: ``(H, W)`` of the batch, at least each image's size.

    Returns:
        ``images`` float32 ``[N, 3, H, W]`` (raw 0-255 BGR values) and ``img_shapes`` float32
        ``[N, 2]`` (each image's ``(h, w)`` before padding): the graph's two inputs.

    Raises:
        ValueError: An image larger than ``size`` (a static graph's fixed input).
    """
    batch = np.zeros((len(images), 3, *size), dtype=np.float32)
    shapes = np.zeros((len(images), 2), dtype=np.float32)
    for i, img in enumerate(images):
        h, w = img.shape[:2]
        if h > size[0] or w > size[1]:
            raise ValueError(f'a resized image of {h} x {w} does not fit the graph\'s fixed '
                             f'input of {size[0]} x {size[1]} (exported with --static)')
        batch[i, :, :h, :w] = img.transpose(2, 0, 1)
        shapes[i] = (h, w)
    return batch, shapes
