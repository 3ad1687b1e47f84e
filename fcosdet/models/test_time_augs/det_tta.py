"""Test-time augmentation of a detector: run it on several views of each image, merge.

Shape letters: N images, V views (augmentations) per image, K detections of all views of all
images, K' detections kept. Boxes are absolute-pixel ``(x1, y1, x2, y2)``.

The views come from the ``TestTimeAug`` transform (e.g. three scales × flip / no flip). The
detector already returns every view's boxes in the pixels of the original image (it divides by
the view's ``scale_factor``), but a flipped view's boxes are still mirrored; they are flipped
back within ``ori_shape``. The boxes of all views of an image are then merged by class-aware
NMS and the ``max_per_img`` best are kept.
"""
import torch
from mmengine.model import BaseTTAModel
from mmengine.structures import InstanceData
from torch import Tensor, nn

from fcosdet.models.layers import batched_nms
from fcosdet.registry import MODELS
from fcosdet.structures import FLIP_DIRECTIONS, DetDataSample, flip_bboxes_where

DEFAULT_TTA_CFG = dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)


def check_tta_cfg(tta_cfg: dict | None) -> dict:
    """``tta_cfg`` with defaults filled in; a ValueError names a bad key or value."""
    cfg = dict(DEFAULT_TTA_CFG, **(tta_cfg or {}))
    unknown = set(cfg) - set(DEFAULT_TTA_CFG)
    if unknown:
        raise ValueError(f'DetTTAModel: unknown tta_cfg keys {sorted(unknown)}; expected '
                         f'{sorted(DEFAULT_TTA_CFG)}')
    nms = dict(cfg['nms'])
    if nms.get('type', 'nms') != 'nms' or not 0 <= nms.get('iou_threshold', -1) <= 1:
        raise ValueError("DetTTAModel: tta_cfg.nms must be dict(type='nms', iou_threshold=t) "
                         f'with 0 <= t <= 1, got {nms}')
    max_per_img = cfg['max_per_img']
    if not isinstance(max_per_img, int) or max_per_img < 1:
        raise ValueError(f'DetTTAModel: tta_cfg.max_per_img must be a positive int, got '
                         f'{max_per_img!r}')
    return dict(nms=nms, max_per_img=max_per_img)


def _view_flips(sample: DetDataSample) -> tuple[bool, bool]:
    """Whether a view was flipped horizontally / vertically, from its metainfo."""
    meta = sample.metainfo
    if 'flip' not in meta or 'ori_shape' not in meta:
        raise KeyError('DetTTAModel: a view lacks `flip` or `ori_shape` in its metainfo; add '
                       "'ori_shape', 'flip', 'flip_direction' to the meta_keys of the "
                       "tta_pipeline's PackDetInputs")
    if not meta['flip']:
        return False, False
    direction = meta.get('flip_direction')
    if direction not in FLIP_DIRECTIONS:
        raise ValueError(f'DetTTAModel: unknown flip_direction {direction!r} of a view; '
                         f'expected one of {FLIP_DIRECTIONS}')
    return direction != 'vertical', direction != 'horizontal'


@MODELS.register_module()
class DetTTAModel(BaseTTAModel):
    """Merges a detector's predictions on the ``TestTimeAug`` views of each image.

    Config (MMDetection's keys)::

        tta_model = dict(type='DetTTAModel',
                         tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5),
                                      max_per_img=100))

    ``tools/test.py --tta`` wraps the config's ``model`` into it (``module=``) and replaces the
    test pipeline with ``tta_pipeline``.

    Args:
        module: The detector, or its config.
        tta_cfg: ``nms`` (class-aware, IoU threshold of the merge) and ``max_per_img``.
        data_preprocessor: Overrides the detector's data preprocessor when given.
    """

    def __init__(self, module: dict | nn.Module, tta_cfg: dict | None = None,
                 data_preprocessor: dict | nn.Module | None = None) -> None:
        super().__init__(module=module, data_preprocessor=data_preprocessor)
        self.tta_cfg = check_tta_cfg(tta_cfg)

    def test_step(self, data: dict) -> list[DetDataSample]:
        """Predict every view of a ``TestTimeAug`` batch and merge (see the module doc).

        Args:
            data: ``inputs`` V lists of N images, ``data_samples`` V lists of N samples.

        Returns:
            N merged samples.
        """
        inputs = data.get('inputs') if isinstance(data, dict) else None
        if not inputs or not isinstance(inputs[0], (list, tuple)):
            raise TypeError('DetTTAModel needs batches of TestTimeAug views (V lists of images);'
                            ' set the test pipeline to the config\'s tta_pipeline')
        return super().test_step(data)

    def merge_preds(self, data_samples_list: list[list[DetDataSample]]) -> list[DetDataSample]:
        """Merge the V predicted views of each of N images into one prediction.

        Args:
            data_samples_list: N lists of V samples with ``pred_instances`` in original-image
                pixels (flipped views still mirrored).

        Returns:
            N samples (the first view's, metainfo kept) with the merged ``pred_instances``
            (``bboxes [K_i, 4]``, ``scores [K_i]``, ``labels [K_i]``, by decreasing score).
        """
        views = [(i, s) for i, samples in enumerate(data_samples_list) for s in samples]
        preds = [s.pred_instances for _, s in views]
        bboxes = torch.cat([p.bboxes for p in preds])
        scores = torch.cat([p.scores for p in preds])
        labels = torch.cat([p.labels for p in preds]).long()
        counts = [len(p) for p in preds]

        def per_box(values: list) -> Tensor:
            """One value per view → one per box [K, ...]."""
            return torch.as_tensor(values, device=bboxes.device).repeat_interleave(
                torch.as_tensor(counts, device=bboxes.device), dim=0)

        flips = per_box([_view_flips(s) for _, s in views]).bool()
        sizes = per_box([list(s.metainfo['ori_shape'][:2]) for _, s in views])
        img_ids = per_box([i for i, _ in views])
        bboxes = flip_bboxes_where(bboxes, sizes, flips[:, 0], flips[:, 1])
        keep = self._keep(bboxes, scores, labels, img_ids, len(data_samples_list))
        merged = []
        for i, samples in enumerate(data_samples_list):
            idx = keep[i]
            sample = samples[0]
            sample.pred_instances = InstanceData(
                bboxes=bboxes[idx], scores=scores[idx], labels=labels[idx])
            merged.append(sample)
        return merged

    def _keep(self, bboxes: Tensor, scores: Tensor, labels: Tensor, img_ids: Tensor,
              num_imgs: int) -> list[Tensor]:
        """Per image, the indices ``[K_i]`` that survive NMS and ``max_per_img``, by score.

        One NMS call for all images: the group of a box is (image, class).
        """
        num_labels = int(labels.max()) + 1 if labels.numel() else 1
        keep = batched_nms(bboxes, scores, img_ids * num_labels + labels,
                           self.tta_cfg['nms']['iou_threshold'])
        keep = keep[torch.sort(img_ids[keep], stable=True).indices]  # by image, then score
        per_img = torch.bincount(img_ids[keep], minlength=num_imgs)
        starts = torch.cumsum(per_img, 0) - per_img
        rank = torch.arange(keep.numel(), device=keep.device) - starts[img_ids[keep]]
        keep = keep[rank < self.tta_cfg['max_per_img']]
        return list(torch.split(keep, per_img.clamp(max=self.tta_cfg['max_per_img']).tolist()))
