"""Packing a pipeline's results dict into the model's input format.

Shape letters: M boxes of the image, H, W image height and width.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import InstanceData

from fcosdet.registry import TRANSFORMS
from fcosdet.structures import DetDataSample

DEFAULT_META_KEYS: tuple[str, ...] = (
    'img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction')
# Values of meta keys that a pipeline without Resize / RandomFlip never sets.
_META_DEFAULTS: dict = dict(scale_factor=(1.0, 1.0), flip=False, flip_direction=None)


def _instances(bboxes: np.ndarray, labels: np.ndarray) -> InstanceData:
    """Boxes float32 [M, 4] and labels long [M] as an :class:`InstanceData`."""
    return InstanceData(
        bboxes=torch.from_numpy(np.ascontiguousarray(bboxes, dtype=np.float32)).reshape(-1, 4),
        labels=torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)))


@TRANSFORMS.register_module()
class PackDetInputs(BaseTransform):
    """Pack the image and annotations into ``dict(inputs, data_samples)``.

    ``inputs`` is the uint8 image as a Tensor [3, H, W] (channel order as loaded, BGR);
    ``data_samples`` a :class:`DetDataSample` whose ``gt_instances`` hold the non-ignored
    boxes (float32 [M, 4]) and labels (long [M]) and whose ``ignored_instances`` hold the
    ignored (crowd) ones. Meta keys absent from the results are skipped, except
    ``scale_factor``, ``flip`` and ``flip_direction``, which default to no resize, no flip.

    Args:
        meta_keys: Keys of the results copied into the data sample's metainfo.
    """

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack one image.

        Args:
            results: Holds ``img`` [H, W, 3] (or [H, W]) and optionally ``gt_bboxes``,
                ``gt_bboxes_labels``, ``gt_ignore_flags``.

        Returns:
            ``dict(inputs=Tensor[3, H, W], data_samples=DetDataSample)``.
        """
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        sample = DetDataSample()
        if 'gt_bboxes' in results:
            bboxes = np.asarray(results['gt_bboxes']).reshape(-1, 4)
            labels = np.asarray(results.get('gt_bboxes_labels', np.zeros(len(bboxes), int)))
            ignore = np.asarray(results.get('gt_ignore_flags', np.zeros(len(bboxes), bool)),
                                dtype=bool)
            sample.gt_instances = _instances(bboxes[~ignore], labels[~ignore])
            sample.ignored_instances = _instances(bboxes[ignore], labels[ignore])
        meta = {key: results[key] for key in self.meta_keys if key in results}
        for key, default in _META_DEFAULTS.items():
            if key in self.meta_keys:
                meta.setdefault(key, default)
        sample.set_metainfo(meta)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
