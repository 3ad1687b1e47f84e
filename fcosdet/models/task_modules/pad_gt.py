"""Padding of per-image ground truth into batch tensors.

Shape letters: ``N`` images, ``M`` gt boxes (the most of any image; padded).
"""
import torch
from mmengine.structures import InstanceData
from torch import Tensor


def pad_gt_instances(batch_gt_instances: list[InstanceData],
                     like: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Stack the gt of N images into zero-padded tensors.

    Args:
        batch_gt_instances: Per image, ``bboxes`` Tensor[M_i, 4] and ``labels`` long[M_i].
        like: When given, the boxes take its dtype and all three tensors its device.

    Returns:
        ``gt_bboxes [N, M, 4]`` (bboxes' dtype), ``gt_labels [N, M]`` long and
        ``gt_valid [N, M]`` bool with ``M = max_i M_i`` (possibly 0); padding rows hold zeros
        and ``False``.

    Raises:
        ValueError: an empty batch, or boxes/labels of the wrong shape.
    """
    if len(batch_gt_instances) == 0:
        raise ValueError('pad_gt_instances: batch_gt_instances must hold at least one image')
    bboxes = [gt.bboxes for gt in batch_gt_instances]
    labels = [gt.labels for gt in batch_gt_instances]
    for i, (boxes, labs) in enumerate(zip(bboxes, labels)):
        if boxes.dim() != 2 or boxes.shape[1] != 4 or labs.shape != boxes.shape[:1]:
            raise ValueError(f'pad_gt_instances: image {i} has bboxes {tuple(boxes.shape)} and '
                             f'labels {tuple(labs.shape)}; expected [M, 4] and [M]')
    device = bboxes[0].device
    counts = torch.tensor([len(b) for b in bboxes], device=device)
    num_images, max_boxes = len(bboxes), max(len(b) for b in bboxes)
    gt_valid = torch.arange(max_boxes, device=device)[None, :] < counts[:, None]
    gt_bboxes = bboxes[0].new_zeros((num_images, max_boxes, 4))
    gt_labels = torch.zeros((num_images, max_boxes), dtype=torch.long, device=device)
    # Row-major boolean indexing visits the valid slots image by image, box by box.
    gt_bboxes[gt_valid] = torch.cat(bboxes).to(gt_bboxes.dtype)
    gt_labels[gt_valid] = torch.cat(labels).long()
    if like is not None:
        return gt_bboxes.to(like), gt_labels.to(like.device), gt_valid.to(like.device)
    return gt_bboxes, gt_labels, gt_valid
