"""Loading of images and box annotations into a pipeline's results dict.

Shape letters: M boxes of the image, H, W image height and width.
"""
from __future__ import annotations

import warnings

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio

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
class LoadImageFromFile(BaseTransform):
    """Load ``results['img_path']`` as a 3-channel uint8 BGR image.

    Grayscale, RGBA and 16-bit files are converted to 3-channel uint8. Sets ``img``,
    ``img_shape`` and ``ori_shape`` (both ``(h, w)``).

    Args:
        to_float32: Return a float32 image instead of uint8.
        color_type: ``flag`` of :func:`mmcv.imfrombytes` (``'color'``, ``'unchanged'``, ...).
        imdecode_backend: Decoding backend of :func:`mmcv.imfrombytes`.
        backend_args: mmengine file backend arguments.
        strict_size: When ``results`` holds the annotation file's ``height``/``width``, a
            decoded image of another size is an error (default: a warning naming the image;
            its boxes would land in the wrong place).
    """

    def __init__(self,
                 to_float32: bool = False,
                 color_type: str = 'color',
                 imdecode_backend: str = 'cv2',
                 backend_args: dict | None = None,
                 strict_size: bool = False) -> None:
        self.strict_size = strict_size
        self.to_float32 = to_float32
        self.color_type = color_type
        self.imdecode_backend = imdecode_backend
        self.backend_args = None if backend_args is None else dict(backend_args)

    def transform(self, results: dict) -> dict:
        """Read and decode the image.

        Args:
            results: Must hold ``img_path``.

        Returns:
            ``results`` with ``img`` [H, W, 3], ``img_shape`` and ``ori_shape``.

        Raises:
            FileNotFoundError: If the image file does not exist.
            ValueError: If it cannot be decoded.
        """
        path = results['img_path']
        try:
            img_bytes = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as err:
            raise FileNotFoundError(f'image file not found: {path}') from err
        try:
            img = mmcv.imfrombytes(img_bytes, flag=self.color_type, backend=self.imdecode_backend)
        except Exception as err:  # decoders raise many types on bad bytes
            raise ValueError(f'image file cannot be decoded: {path} ({err})') from err
        if img is None or img.size == 0:
            raise ValueError(f'image file cannot be decoded (corrupt or not an image): {path}')
        img = to_three_channel_uint8(img)
        self._check_size(results, img.shape[:2])
        results['img'] = img.astype(np.float32) if self.to_float32 else img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

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

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(to_float32={self.to_float32}, '
                f"color_type='{self.color_type}', imdecode_backend='{self.imdecode_backend}', "
                f'backend_args={self.backend_args})')


@TRANSFORMS.register_module()
class LoadAnnotations(BaseTransform):
    """Turn ``results['instances']`` into numpy box arrays.

    Adds ``gt_bboxes`` float32 [M, 4] ``(x1, y1, x2, y2)``, ``gt_bboxes_labels`` int64 [M]
    and ``gt_ignore_flags`` bool [M] (True for crowd boxes, which must never be positives).

    Args:
        with_bbox: Load boxes and ignore flags.
        with_label: Load labels.
    """

    def __init__(self, with_bbox: bool = True, with_label: bool = True) -> None:
        self.with_bbox = with_bbox
        self.with_label = with_label

    def transform(self, results: dict) -> dict:
        """Convert the instances of one image.

        Args:
            results: Must hold ``instances`` (see ``CocoDataset``).

        Returns:
            ``results`` with the arrays above.
        """
        instances = results.get('instances', [])
        if self.with_bbox:
            results['gt_bboxes'] = np.array(
                [inst['bbox'] for inst in instances], dtype=np.float32).reshape(-1, 4)
            results['gt_ignore_flags'] = np.array(
                [inst['ignore_flag'] for inst in instances], dtype=bool)
        if self.with_label:
            results['gt_bboxes_labels'] = np.array(
                [inst['bbox_label'] for inst in instances], dtype=np.int64)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(with_bbox={self.with_bbox}, with_label={self.with_label})'
