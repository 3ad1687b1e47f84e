"""Augmentations applied to a whole preprocessed batch (``DetDataPreprocessor.batch_augments``).

Shape letters: N images, H/W batch height/width.
"""
import torch.nn.functional as F
from torch import Tensor, nn

from fcosdet.registry import MODELS
from fcosdet.structures import SampleList


@MODELS.register_module()
class BatchFixedSizePad(nn.Module):
    """Pad a batch at the bottom and right to at least ``size`` (large-scale-jitter training).

    The padded pixels get ``img_pad_value`` (the batch is already normalised); every data
    sample's ``batch_input_shape`` and ``pad_shape`` become the padded ``(H, W)``.

    Args:
        size: ``(h, w)`` the batch is padded to (a larger side stays as it is).
        img_pad_value: Value of the padded pixels.
    """

    def __init__(self, size: tuple[int, int], img_pad_value: float = 0) -> None:
        super().__init__()
        self.size = (int(size[0]), int(size[1]))
        self.img_pad_value = img_pad_value

    def forward(self, inputs: Tensor, data_samples: SampleList | None = None
                ) -> tuple[Tensor, SampleList | None]:
        """Pad ``inputs`` [N, 3, H, W] to ``[N, 3, max(H, h), max(W, w)]``."""
        src_h, src_w = inputs.shape[-2:]
        pad_h, pad_w = max(self.size[0] - src_h, 0), max(self.size[1] - src_w, 0)
        if pad_h == 0 and pad_w == 0:
            return inputs, data_samples
        inputs = F.pad(inputs, (0, pad_w, 0, pad_h), value=self.img_pad_value)
        shape = tuple(inputs.shape[-2:])
        for sample in data_samples or []:
            sample.set_metainfo(dict(batch_input_shape=shape, pad_shape=shape))
        return inputs, data_samples
