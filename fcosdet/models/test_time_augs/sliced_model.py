"""Sliced inference: predict overlapping tiles of each image, shift the boxes back, merge.

Shape letters: N images, T tiles of an image, K detections of all tiles of an image, K' merged
detections. Boxes are absolute-pixel ``(x1, y1, x2, y2)``.

For large images with small objects, which vanish when the whole image is resized to the test
scale. The tiles (:func:`fcosdet.structures.slicing.slice_grid`) are cut from the full-resolution
image and each one goes through the config's test pipeline (so its ``Resize`` applies per tile,
as in SAHI), in batches, through the wrapped detector's ``test_step``. The detector returns each
tile's boxes in tile pixels; they are shifted by the tile's corner, optionally joined by one
pass over the whole image (large objects), and merged: class-aware NMS, or greedy non-maximum
merging (:func:`fcosdet.models.layers.merge.merge_detections`). An image no larger than one tile
is predicted once, like without slicing.

The batches this model receives hold full images without any resizing: the test pipeline
split by :func:`split_slicing_pipeline` (its loading steps and ``PackDetInputs``).
"""
import copy

import torch
from mmengine.dataset import Compose, pseudo_collate
from mmengine.model import BaseTTAModel
from mmengine.structures import InstanceData
from torch import Tensor, nn

from fcosdet.models.layers.merge import MERGE_MODES, merge_detections
from fcosdet.registry import MODELS, TRANSFORMS
from fcosdet.structures import DetDataSample
from fcosdet.structures.slicing import check_slice_params, slice_grid

DEFAULT_SLICE_CFG = dict(slice_size=None, overlap=0.2, merge='nms', merge_thr=0.5,
                         full_image=False, batch_size=8, max_per_img=100)


def check_slice_cfg(slice_cfg: dict) -> dict:
    """``slice_cfg`` with defaults filled in; a ValueError names a bad key or value."""
    cfg = dict(DEFAULT_SLICE_CFG, **slice_cfg)
    unknown = set(cfg) - set(DEFAULT_SLICE_CFG)
    if unknown:
        raise ValueError(f'slice_cfg: unknown keys {sorted(unknown)}; expected '
                         f'{sorted(DEFAULT_SLICE_CFG)}')
    size = cfg['slice_size']
    cfg['slice_size'] = check_slice_params(tuple(size) if isinstance(size, list) else size,
                                           cfg['overlap'])
    if cfg['merge'] not in MERGE_MODES:
        raise ValueError(f"slice_cfg: merge must be one of {MERGE_MODES}, got {cfg['merge']!r}")
    if not 0 <= cfg['merge_thr'] <= 1:
        raise ValueError(f"slice_cfg: merge_thr must be in [0, 1], got {cfg['merge_thr']!r}")
    for key in ('batch_size', 'max_per_img'):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(f'slice_cfg: {key} must be an int >= 1, got {cfg[key]!r}')
    return cfg


def _step_type(step: dict) -> str:
    """Type name of a transform config."""
    return step['type'] if isinstance(step['type'], str) else step['type'].__name__


def split_slicing_pipeline(pipeline: list[dict]) -> tuple[list[dict], list[dict]]:
    """Split a test pipeline into the full-image pipeline and the per-tile pipeline.

    Args:
        pipeline: The config's test pipeline (a list of transform configs).

    Returns:
        ``(image_pipeline, tile_pipeline)``: the loading steps (``Load*``) plus the config's
        ``PackDetInputs``, for the dataset; every other step (resizing, packing), for each tile.

    Raises:
        ValueError: The pipeline has a ``TestTimeAug`` step or no ``PackDetInputs``.
    """
    types = [_step_type(step) for step in pipeline]
    if any(t.endswith('TestTimeAug') for t in types):
        raise ValueError('sliced inference does not combine with TestTimeAug (--tta)')
    packs = [step for step, t in zip(pipeline, types) if t.endswith('PackDetInputs')]
    if not packs:
        raise ValueError('sliced inference needs PackDetInputs in the test pipeline')
    loads = [step for step, t in zip(pipeline, types) if t.startswith('Load')]
    tiles = [step for step, t in zip(pipeline, types) if not t.startswith('Load')]
    return copy.deepcopy(loads + [packs[-1]]), copy.deepcopy(tiles)


@MODELS.register_module()
class SlicedDetModel(BaseTTAModel):
    """Runs a detector on overlapping tiles of each image and merges (see the module doc).

    ``tools/test.py --slice-size H W`` wraps the config's model into it and gives the dataset
    the full-image half of the test pipeline; ``inference_detector`` and ``DetInferencer``
    wrap a built detector. Works with any detector (or ``ORTDetector``) with ``test_step``.

    Args:
        module: The detector, or its config.
        tile_pipeline: Transform configs applied to each tile (the second half of
            :func:`split_slicing_pipeline`).
        slice_cfg: ``slice_size`` ``(h, w)`` (required), ``overlap`` (0.2), ``merge``
            (``'nms'`` or ``'nmm'``), ``merge_thr`` (IoU for NMS, IoS for NMM; 0.5),
            ``full_image`` (add one whole-image pass; False), ``batch_size`` (tiles per forward;
            8), ``max_per_img`` (detections kept; 100).
        data_preprocessor: Unused (the detector preprocesses its tiles); for the signature.
    """

    def __init__(self, module: dict | nn.Module, tile_pipeline: list[dict], slice_cfg: dict,
                 data_preprocessor: dict | nn.Module | None = None) -> None:
        super().__init__(module=module, data_preprocessor=data_preprocessor)
        self.slice_cfg = check_slice_cfg(slice_cfg)
        self.tile_pipeline = Compose([TRANSFORMS.build(copy.deepcopy(step))
                                      for step in tile_pipeline])

    def test_step(self, data: dict) -> list[DetDataSample]:
        """Predict each full image of the batch by tiles.

        Args:
            data: ``inputs``: N uint8 images [3, H, W] (as loaded, no resize);
                ``data_samples``: their N samples (``ori_shape`` = (H, W)).

        Returns:
            The N samples with ``pred_instances`` (``bboxes [K', 4]`` in image pixels,
            ``scores [K']``, ``labels [K']``, by decreasing score). The tiles of all N images go
            through the detector ``batch_size`` at a time.
        """
        inputs, samples = data['inputs'], data['data_samples']
        if isinstance(inputs[0], (list, tuple)):
            raise TypeError('SlicedDetModel got TestTimeAug views; sliced inference does not '
                            'combine with --tta')
        views = [(i, *view) for i, img in enumerate(inputs) for view in self._views(img)]
        preds: list[list[DetDataSample]] = [[s] for s in samples]
        size = self.slice_cfg['batch_size']
        for start in range(0, len(views), size):  # the tiles of all images, in batches
            chunk = views[start:start + size]
            batch = pseudo_collate([self._pack(crop, samples[i]) for i, _, _, crop in chunk])
            for (i, x1, y1, _), pred in zip(chunk, self.module.test_step(batch)):
                inst = pred.pred_instances
                inst.bboxes = inst.bboxes + inst.bboxes.new_tensor([x1, y1, x1, y1])
                preds[i].append(pred)
        return self.merge_preds(preds)

    def _views(self, img: Tensor) -> list[tuple[int, int, Tensor]]:
        """``(x1, y1, crop [3, h, w])`` of every tile, plus the whole image when asked."""
        tiles = slice_grid(img.shape[-2], img.shape[-1], self.slice_cfg['slice_size'],
                           self.slice_cfg['overlap'])
        views = [(x1, y1, img[:, y1:y2, x1:x2]) for x1, y1, x2, y2 in tiles.tolist()]
        if self.slice_cfg['full_image'] and len(views) > 1:
            views.append((0, 0, img))
        return views

    def _pack(self, crop: Tensor, sample: DetDataSample) -> dict:
        """One view through the tile pipeline, as if loaded from a file of its own."""
        hwc = crop.permute(1, 2, 0).cpu().numpy().copy()
        results = dict(img=hwc, img_shape=hwc.shape[:2], ori_shape=hwc.shape[:2],
                       img_id=sample.metainfo.get('img_id'),
                       img_path=sample.metainfo.get('img_path'))
        return self.tile_pipeline(results)

    def merge_preds(self, data_samples_list: list[list[DetDataSample]]) -> list[DetDataSample]:
        """Merge the shifted views of each image into its sample.

        Args:
            data_samples_list: N lists: the image's own sample, then its views' predictions
                (boxes already in image pixels).

        Returns:
            The N image samples with the merged ``pred_instances``.
        """
        merged = []
        for sample, *views in data_samples_list:
            insts = [v.pred_instances for v in views]
            if len(insts) == 1:  # an image no larger than a tile: predicted as without slicing
                sample.pred_instances = insts[0]
                merged.append(sample)
                continue
            bboxes, scores, labels = merge_detections(
                torch.cat([p.bboxes for p in insts]), torch.cat([p.scores for p in insts]),
                torch.cat([p.labels for p in insts]).long(), self.slice_cfg['merge'],
                self.slice_cfg['merge_thr'])
            keep = slice(0, self.slice_cfg['max_per_img'])
            sample.pred_instances = InstanceData(bboxes=bboxes[keep], scores=scores[keep],
                                                 labels=labels[keep])
            merged.append(sample)
        return merged
