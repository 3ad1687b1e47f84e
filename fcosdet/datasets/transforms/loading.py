"""Loading of images and box annotations: mmcv's transforms plus what detection needs.

Shape letters: M boxes of the image, H, W image height and width.
"""
from __future__ import annotations

import warnings

import numpy as np
from mmcv.transforms import LoadAnnotations as MMCVLoadAnnotations
from mmcv.transforms import LoadImageFromFile as MMCVLoadImageFromFile

from fcosdet.registry import TRANSFORMS


def to_three_channel_uint8(img: np.ndarray) -> np.ndarray:
    """Bring a decoded image to 3-channel uint8.

    Args:
        img: [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] array of uint8, uint16 or float.

    Returns:
        uint8 [H, W, 3]: grey is replicated, alpha is dropped, 16-bit keeps its top 8 bits.
    """
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


@TRANSFORMS.register_module()
class LoadImageFromFile(MMCVLoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` (same arguments) that always gives a 3-channel BGR image.

    What differs from mmcv: grey, RGBA and 16-bit files become 3-channel uint8 (before the
    ``to_float32`` cast), a missing or undecodable file raises an error naming it, and a decoded
    size that differs from the annotation file's ``height``/``width`` (when ``results`` holds
    them) is a warning naming the image, or an error with ``strict_size=True`` (its boxes would
    land in the wrong place). Sets ``img`` [H, W, 3], ``img_shape`` and ``ori_shape`` (both
    ``(h, w)``).
    """

    def __init__(self, *args, strict_size: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.strict_size = strict_size

    def transform(self, results: dict) -> dict | None:
        """Read and decode ``results['img_path']``.

        Raises:
            FileNotFoundError: If the image file does not exist.
            ValueError: If it cannot be decoded.
        """
        path = results['img_path']
        to_float32, self.to_float32 = self.to_float32, False  # cast after the conversion
        try:
            loaded = super().transform(results)
        except FileNotFoundError as err:
            raise FileNotFoundError(f'image file not found: {path}') from err
        except AssertionError as err:  # mmcv asserts that the decoder returned an image
            raise ValueError(f'image file cannot be decoded (corrupt or not an image): '
                             f'{path}') from err
        except Exception as err:  # decoders raise many types on bad bytes
            raise ValueError(f'image file cannot be decoded: {path} ({err})') from err
        finally:
            self.to_float32 = to_float32
        if loaded is None:  # ignore_empty=True and an unreadable file
            return None
        if loaded['img'].size == 0:
            raise ValueError(f'image file cannot be decoded (corrupt or not an image): {path}')
        img = to_three_channel_uint8(loaded['img'])
        self._check_size(results, img.shape[:2])
        loaded['img'] = img.astype(np.float32) if to_float32 else img
        return loaded

    def _check_size(self, results: dict, decoded: tuple[int, int]) -> None:
        """Compare the decoded ``(h, w)`` with the annotation file's ``height``/``width``."""
        expected = (results.get('height'), results.get('width'))
        if None in expected or tuple(decoded) == expected:
            return
        hint = (' (rotated: EXIF orientation? color_type=\'color_ignore_orientation\' '
                'keeps the stored pixels)' if tuple(decoded) == expected[::-1] else '')
        msg = (f"image {results['img_path']} decodes to height x width {decoded[0]} x "
               f'{decoded[1]}, but its annotation file says {expected[0]} x {expected[1]}'
               f'{hint}')
        if self.strict_size:
            raise ValueError(msg)
        warnings.warn(msg, stacklevel=2)


@TRANSFORMS.register_module()
class LoadAnnotations(MMCVLoadAnnotations):
    """mmcv's ``LoadAnnotations`` (``gt_bboxes`` float32 [M, 4] ``(x1, y1, x2, y2)``,
    ``gt_bboxes_labels`` int64 [M]) plus ``gt_ignore_flags`` bool [M] with the boxes.

    An ignore flag is True for a crowd box, which must never be a positive. ``results`` without
    ``instances`` give empty arrays.
    """

    def transform(self, results: dict) -> dict:
        """Convert the ``instances`` of one image (see ``CocoDataset``) into arrays."""
        results.setdefault('instances', [])
        return super().transform(results)

    def _load_bboxes(self, results: dict) -> None:
        """mmcv's boxes and the ignore flags ``gt_ignore_flags`` bool [M]."""
        super()._load_bboxes(results)
        results['gt_ignore_flags'] = np.array(
            [inst['ignore_flag'] for inst in results['instances']], dtype=bool)
