"""The one base class of the dense heads: MMDetection's ``loss`` / ``predict`` entry points.

Shape letters: N images, L levels, H_l/W_l height/width of level l.
"""
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from fcosdet.structures import SampleList


class BaseDenseHead(BaseModule):
    """Unpacks data samples for the ``*_by_feat`` methods every dense head implements.

    A subclass provides ``forward(x)`` (a tuple of per-level lists), ``loss_by_feat(*outs,
    batch_gt_instances, batch_img_metas)`` and ``predict_by_feat(*outs, batch_img_metas=...,
    rescale=...)``; everything else (towers, targets, decoding) is composed from
    ``dense_utils``, ``dense_postprocess`` and ``task_modules``.
    """

    def loss(self, x: tuple[Tensor, ...], batch_data_samples: SampleList) -> dict[str, Tensor]:
        """Forward L maps ``[N, in_channels, H_l, W_l]`` and compute the losses against the
        ``gt_instances`` of the data samples."""
        outs = self(x)
        batch_gt_instances = [s.gt_instances for s in batch_data_samples]
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        return self.loss_by_feat(*outs, batch_gt_instances, batch_img_metas)

    def predict(self, x: tuple[Tensor, ...], batch_data_samples: SampleList,
                rescale: bool = True) -> list[InstanceData]:
        """Forward and post-process; one :class:`InstanceData` per data sample."""
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        return self.predict_by_feat(*self(x), batch_img_metas=batch_img_metas, rescale=rescale)
