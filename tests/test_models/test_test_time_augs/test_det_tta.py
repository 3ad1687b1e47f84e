"""DetTTAModel on TestTimeAug views of hand-made scenes, with a detector that finds blobs.

The fake detector boxes each bright blob of its input exactly (columns/rows of non-zero
pixels), divides by the view's ``scale_factor`` like FCOS's ``rescale`` and scores a blob 0.9
in the left half of the view and 0.6 in the right half, so that a flipped view scores the same
object differently and wrong mapping shows up in the scores.
"""
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.structures import InstanceData
from torch import nn

from fcosdet.datasets.transforms import TestTimeAug
from fcosdet.models.test_time_augs import DetTTAModel
from fcosdet.structures import DetDataSample

H, W = 60, 100


def _runs(occupied: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True values."""
    edges = np.flatnonzero(np.diff(np.r_[0, occupied.astype(int), 0]))
    return list(zip(edges[::2], edges[1::2]))


class BlobDetector(nn.Module):
    """Boxes the blobs of each image (blobs are separated by empty columns)."""

    def test_step(self, data: dict) -> list[DetDataSample]:
        results = []
        for img, sample in zip(data['inputs'], data['data_samples']):
            mask = img.numpy().max(0) > 0
            width = mask.shape[1]
            boxes, scores = [], []
            for x1, x2 in _runs(mask.any(0)):
                (y1, y2), = _runs(mask[:, x1:x2].any(1))
                boxes.append([x1, y1, x2, y2])
                scores.append(0.9 if (x1 + x2) / 2 < width / 2 else 0.6)
            sw, sh = sample.metainfo['scale_factor']
            sample.pred_instances = InstanceData(
                bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
                / torch.tensor([sw, sh, sw, sh]),
                scores=torch.tensor(scores), labels=torch.zeros(len(boxes), dtype=torch.long))
            results.append(sample)
        return results


def _scene(*blobs: tuple[int, int, int, int]) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    for x1, y1, x2, y2 in blobs:
        img[y1:y2, x1:x2] = 255
    return img


def _tta_batch(images: list[np.ndarray], scales=((W, H), (W // 2, H // 2))) -> dict:
    """Views scale × (flip, no flip) of each image, collated like the test dataloader."""
    tta = TestTimeAug([
        [dict(type='Resize', scale=s, keep_ratio=True, interpolation='nearest') for s in scales],
        [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
        [dict(type='PackDetInputs', meta_keys=('img_id', 'ori_shape', 'img_shape',
                                               'scale_factor', 'flip', 'flip_direction'))]])
    return pseudo_collate([tta(dict(img=img, img_id=i, ori_shape=img.shape[:2]))
                           for i, img in enumerate(images)])


def _tta_model(iou_threshold: float = 0.5, max_per_img: int = 100) -> DetTTAModel:
    return DetTTAModel(BlobDetector(), tta_cfg=dict(
        nms=dict(type='nms', iou_threshold=iou_threshold), max_per_img=max_per_img))


def test_every_view_maps_back_exactly():
    # one blob in the left half; IoU threshold 1 keeps all four views' boxes
    (merged,) = _tta_model(iou_threshold=1.0).test_step(_tta_batch([_scene((10, 10, 30, 30))]))
    pred = merged.pred_instances
    assert pred.bboxes.tolist() == [[10., 10., 30., 30.]] * 4
    # unflipped views see it on the left (0.9), flipped ones on the right (0.6)
    assert pred.scores.tolist() == pytest.approx([0.9, 0.9, 0.6, 0.6])


def test_symmetric_scene_merges_to_both_blobs_at_best_score():
    data = _tta_batch([_scene((10, 20, 30, 40), (70, 20, 90, 40))])
    (merged,) = _tta_model().test_step(data)
    pred = merged.pred_instances
    # each blob is on the left in one of the flip states, so both end at 0.9; NMS leaves one
    # box per blob
    order = pred.bboxes[:, 0].argsort()
    assert pred.bboxes[order].tolist() == [[10., 20., 30., 40.], [70., 20., 90., 40.]]
    assert pred.scores.tolist() == pytest.approx([0.9, 0.9])
    assert merged.metainfo['img_id'] == 0 and merged.metainfo['ori_shape'] == (H, W)


def test_batch_of_images_and_max_per_img():
    images = [_scene((10, 20, 30, 40), (70, 20, 90, 40)), _scene((60, 5, 95, 50)),
              np.zeros((H, W, 3), np.uint8)]
    merged = _tta_model(max_per_img=1).test_step(_tta_batch(images))
    assert [m.metainfo['img_id'] for m in merged] == [0, 1, 2]
    assert [len(m.pred_instances) for m in merged] == [1, 1, 0]
    assert merged[0].pred_instances.scores.tolist() == pytest.approx([0.9])
    assert merged[1].pred_instances.bboxes.tolist() == [[60., 5., 95., 50.]]
    # the right-half blob scores 0.9 only in the flipped views
    assert merged[1].pred_instances.scores.tolist() == pytest.approx([0.9])


def test_bad_config_and_batches():
    with pytest.raises(ValueError, match='iou_threshold'):
        DetTTAModel(BlobDetector(), tta_cfg=dict(nms=dict(type='soft_nms', iou_threshold=0.5)))
    with pytest.raises(ValueError, match='max_per_img'):
        DetTTAModel(BlobDetector(), tta_cfg=dict(max_per_img=0))
    with pytest.raises(ValueError, match='unknown tta_cfg keys'):
        DetTTAModel(BlobDetector(), tta_cfg=dict(score_thr=0.1))
    plain = pseudo_collate([dict(inputs=torch.zeros(3, H, W), data_samples=DetDataSample())])
    with pytest.raises(TypeError, match='tta_pipeline'):
        _tta_model().test_step(plain)
    with pytest.raises(ValueError, match='non-empty'):
        TestTimeAug([[]])
