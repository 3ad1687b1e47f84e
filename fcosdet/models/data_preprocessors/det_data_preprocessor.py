"""Normalise, pad and batch detection images; record the batch/pad shapes in the metas.

Shape letters: N images, H/W image height/width.
"""
import copy
import math
from collections.abc import Sequence

import torch
from mmengine.model import ImgDataPreprocessor
from torch import nn

from fcosdet.registry import MODELS


@MODELS.register_module()
class DetDataPreprocessor(ImgDataPreprocessor):
    """Image preprocessor for detection.

    On top of mmengine's ``ImgDataPreprocessor`` (channel flip, ``(x - mean) / std``, padding to
    a multiple of ``pad_size_divisor`` and stacking), it stores in every data sample's metainfo
    ``batch_input_shape`` (h, w of the padded batch) and ``pad_shape`` (h, w of the image
    rounded up to ``pad_size_divisor``). In training, ``batch_augments`` (e.g.
    :class:`BatchFixedSizePad`) then run on the whole batch, in order.

    Args:
        mean (Sequence[float] | None): Per-channel mean (1 or 3 values), after any channel flip.
        std (Sequence[float] | None): Per-channel std (1 or 3 values, all > 0).
        pad_size_divisor (int): Padded height and width are multiples of this.
        pad_value (float): Value of the padded pixels.
        bgr_to_rgb (bool): Flip BGR input to RGB.
        rgb_to_bgr (bool): Flip RGB input to BGR.
        non_blocking (bool): Non-blocking host → device copies.
        batch_augments (list[dict] | None): Configs of batch augmentations (training only).
    """

    def __init__(self,
                 mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None,
                 pad_size_divisor: int = 32,
                 pad_value: float = 0,
                 bgr_to_rgb: bool = False,
                 rgb_to_bgr: bool = False,
                 non_blocking: bool = False,
                 batch_augments: list[dict] | None = None) -> None:
        _check_args(mean, std, pad_size_divisor, bgr_to_rgb, rgb_to_bgr)
        super().__init__(mean=mean, std=std, pad_size_divisor=pad_size_divisor,
                         pad_value=pad_value, bgr_to_rgb=bgr_to_rgb, rgb_to_bgr=rgb_to_bgr,
                         non_blocking=non_blocking)
        self.batch_augments = None if batch_augments is None else nn.ModuleList(
            [MODELS.build(copy.deepcopy(aug)) for aug in batch_augments])

    def forward(self, data: dict, training: bool = False) -> dict:
        """Preprocess a collated batch.

        Args:
            data (dict): ``inputs`` (list of ``[3, H_n, W_n]`` uint8/float tensors, or a
                ``[N, 3, H, W]`` tensor) and optional ``data_samples``.
            training (bool): Apply ``batch_augments``.

        Returns:
            dict: ``inputs`` ``[N, 3, H_pad, W_pad]`` float and the same ``data_samples``
            with ``batch_input_shape`` and ``pad_shape`` set.
        """
        if not isinstance(data, dict) or 'inputs' not in data:
            raise TypeError('DetDataPreprocessor expects a dict with key "inputs", got '
                            f'{type(data).__name__}')
        pad_shapes = self._pad_shapes(data['inputs'])
        data = super().forward(data, training)
        data_samples = data.get('data_samples')
        if data_samples is not None:
            batch_input_shape = tuple(data['inputs'].shape[-2:])
            for data_sample, pad_shape in zip(data_samples, pad_shapes):
                data_sample.set_metainfo(dict(batch_input_shape=batch_input_shape,
                                              pad_shape=pad_shape))
        if training and self.batch_augments is not None:
            inputs = data['inputs']
            for augment in self.batch_augments:
                inputs, data_samples = augment(inputs, data_samples)
            data = dict(data, inputs=inputs, data_samples=data_samples)
        return data

    def _pad_shapes(self, inputs: torch.Tensor | Sequence[torch.Tensor]) -> list[tuple[int, int]]:
        """(h, w) of every image rounded up to ``pad_size_divisor``."""
        if isinstance(inputs, torch.Tensor):
            sizes = [tuple(inputs.shape[-2:])] * inputs.shape[0]
        else:
            sizes = [tuple(img.shape[-2:]) for img in inputs]
        div = self.pad_size_divisor
        return [(math.ceil(h / div) * div, math.ceil(w / div) * div) for h, w in sizes]


def _check_args(mean: Sequence[float] | None, std: Sequence[float] | None,
                pad_size_divisor: int, bgr_to_rgb: bool, rgb_to_bgr: bool) -> None:
    """Raise early, naming the key, on invalid preprocessor settings."""
    if bgr_to_rgb and rgb_to_bgr:
        raise ValueError('DetDataPreprocessor: bgr_to_rgb and rgb_to_bgr cannot both be True')
    if (mean is None) != (std is None):
        raise ValueError(f'DetDataPreprocessor: mean and std must both be given or both be '
                         f'None, got mean={mean!r}, std={std!r}')
    for key, value in (('mean', mean), ('std', std)):
        if value is not None and len(value) not in (1, 3):
            raise ValueError(f'DetDataPreprocessor: {key} needs 1 or 3 values, got {value!r}')
    if std is not None and any(s <= 0 for s in std):
        raise ValueError(f'DetDataPreprocessor: std values must be > 0, got {std!r}')
    if not isinstance(pad_size_divisor, int) or pad_size_divisor < 1:
        raise ValueError(f'DetDataPreprocessor: pad_size_divisor must be a positive int, '
                         f'got {pad_size_divisor!r}')
