"""Exact greedy non-maximum suppression in pure PyTorch: blocked suppression bitmask + one sweep.

Shape letters: ``K`` boxes (detections), ``K'`` kept boxes, ``T`` boxes per block (tile side),
``B`` blocks (``ceil(K / T)``), ``P`` tiles computed, ``W`` bytes of a bitmask row (``B * T / 8``).
Boxes are ``(x1, y1, x2, y2)``.

Greedy NMS visits boxes by decreasing score and keeps a box unless a kept higher-scoring box
overlaps it by IoU > threshold. Boxes are sorted by (group, decreasing score) and cut into blocks
of ``T``; the IoU test runs, vectorised and batched, on the tiles (row block, column block) of the
upper triangle that can hold a suppression: same group range and overlapping extents. The result
is a bitmask, row ``i`` = the later boxes that box ``i`` suppresses, packed 8 columns a byte.
Greedy selection is inherently sequential (box ``j``'s fate depends on the fate of every box
before it), so one sweep over the rows then does what the compiled ops do: skip a removed row,
else OR its row into the removed set. Rows are Python integers, so a step is one bit test and one
multi-word OR; the sweep costs ``O(K * K / 64)`` word operations whatever the longest
suppression chain, and on CUDA the bitmask crosses to the host once (no per-step sync).

``torchvision.ops.nms`` (or ``mmcv.ops.nms``) runs instead when importable; neither is a
dependency.
"""
import numpy as np
import torch
from torch import Tensor

# Tile side, a multiple of 8 (bits are packed by bytes). Small tiles waste little IoU work on
# the diagonal and skip more of a spread-out scene; 64 was fastest at nms_pre=1000 (32 to 128).
_BLOCK = 64
# Box pairs whose IoU is computed at once; bounds the peak memory (4 MB per float temporary).
_PAIRS_PER_CHUNK = 1 << 20
_EPS = 1e-6  # lower bound of the union, as in bbox_overlaps


def _compiled_nms_op():
    """``nms(boxes, scores, iou_threshold) -> keep`` of torchvision or mmcv when importable."""
    try:
        from torchvision.ops import nms as tv_nms
        return tv_nms
    except ImportError:
        pass
    try:  # mmcv-lite has no compiled ops: importing mmcv.ops then fails on mmcv._ext
        from mmcv.ops import nms as mmcv_nms
    except ImportError:
        return None
    return lambda boxes, scores, iou_threshold: mmcv_nms(boxes, scores, iou_threshold)[1]


_COMPILED_NMS = _compiled_nms_op()


def _check(boxes: Tensor, scores: Tensor, name: str) -> None:
    """Raise a ValueError unless boxes are ``[K, 4]`` and scores ``[K]``."""
    if boxes.dim() != 2 or boxes.shape[1] != 4 or scores.shape != boxes.shape[:1]:
        raise ValueError(f'{name}: boxes must be [K, 4] and scores [K], got '
                         f'{tuple(boxes.shape)} and {tuple(scores.shape)}')


def _active_tiles(boxes: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """``[P, 2]`` (row block, column block) pairs of the upper triangle that may suppress.

    A tile can hold a pair with IoU > threshold >= 0 only if the row block's group range meets
    the column block's (boxes are group-sorted) and the blocks' bounding extents overlap.

    Args:
        boxes: ``[B * T, 4]`` boxes sorted by (group, decreasing score), padded.
        groups: ``[B * T]`` their groups, padded.
        iou_threshold: IoU above which a box suppresses another.
    """
    blocks = boxes.view(-1, _BLOCK, 4)
    lo = blocks[..., :2].amin(dim=1)  # [B, 2] smallest x1, y1 of each block
    hi = blocks[..., 2:].amax(dim=1)  # [B, 2] largest x2, y2
    block_groups = groups.view(-1, _BLOCK)
    ids = torch.arange(blocks.shape[0], device=boxes.device)
    active = ids[None, :] >= ids[:, None]
    active &= block_groups[None, :, 0] <= block_groups[:, None, -1]
    if iou_threshold >= 0:  # IoU > 0 needs a positive intersection
        active &= (lo[None, :, :] < hi[:, None, :]).all(-1)
        active &= (lo[:, None, :] < hi[None, :, :]).all(-1)
    return active.nonzero()


def _tile_overlaps(boxes: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """IoU ``[P, T, T]`` of the boxes ``rows [P, T]`` with the boxes ``cols [P, T]``.

    The arithmetic of :func:`bbox_overlaps` (same values), on coordinate planes instead of
    ``[..., 2]`` slices and in place: a third of the time on these tiles.
    """
    rx1, ry1, rx2, ry2 = (coord[:, :, None] for coord in boxes[rows].unbind(-1))
    cx1, cy1, cx2, cy2 = (coord[:, None, :] for coord in boxes[cols].unbind(-1))
    overlap = torch.minimum(rx2, cx2).sub_(torch.maximum(rx1, cx1)).clamp_(min=0)
    overlap *= torch.minimum(ry2, cy2).sub_(torch.maximum(ry1, cy1)).clamp_(min=0)
    union = ((rx2 - rx1) * (ry2 - ry1)) + ((cx2 - cx1) * (cy2 - cy1))
    return overlap.div_(union.sub_(overlap).clamp_(min=_EPS))


def _tile_bits(boxes: Tensor, group_ends: Tensor, tiles: Tensor,
               iou_threshold: float) -> Tensor:
    """Bool ``[P, T, T]``: box r of each tile's row block suppresses box c of its column block.

    Args:
        boxes: ``[B * T, 4]`` sorted, padded boxes.
        group_ends: ``[B * T]`` end (exclusive, at most K) of each box's group in sorted order.
        tiles: ``[P, 2]`` (row block, column block).
        iou_threshold: IoU above which box r suppresses box c.
    """
    offsets = torch.arange(_BLOCK, device=boxes.device)
    rows = tiles[:, 0, None] * _BLOCK + offsets  # [P, T] sorted indices
    cols = tiles[:, 1, None] * _BLOCK + offsets
    bits = _tile_overlaps(boxes, rows, cols) > iou_threshold
    # A box suppresses only later boxes of its own group: the columns (row, group end).
    cols, rows = cols[:, None, :], rows[:, :, None]
    return bits.logical_and_(cols > rows).logical_and_(cols < group_ends[rows])


def _suppression_bitmask(boxes: Tensor, groups: Tensor, iou_threshold: float) -> np.ndarray:
    """Packed upper-triangular suppression matrix ``uint8 [B * T, W]`` of sorted boxes, on the
    host: bit ``j % 8`` of byte ``j // 8`` of row ``i`` is set when box i suppresses box j.

    Args:
        boxes: ``[K, 4]`` float boxes sorted by (group, decreasing score).
        groups: ``[K]`` their sorted groups.
        iou_threshold: IoU above which box i suppresses a later box j of its group.
    """
    num_boxes = boxes.shape[0]
    num_blocks = -(-num_boxes // _BLOCK)
    pad = num_blocks * _BLOCK - num_boxes
    group_ends = torch.searchsorted(groups, groups, right=True)
    # Padding repeats the last box: it changes no extent, and its group end masks it out.
    boxes = torch.cat([boxes, boxes[-1:].expand(pad, 4)])
    groups = torch.cat([groups, groups[-1:].expand(pad)])
    group_ends = torch.cat([group_ends, group_ends.new_zeros(pad)])
    tiles = _active_tiles(boxes, groups, iou_threshold)
    mask = np.zeros((num_blocks, _BLOCK, num_blocks, _BLOCK // 8), dtype=np.uint8)
    for chunk in tiles.split(max(_PAIRS_PER_CHUNK // _BLOCK**2, 1)):  # one host transfer per chunk
        bits = _tile_bits(boxes, group_ends, chunk, iou_threshold).cpu().numpy()
        rows, cols = chunk.cpu().numpy().T
        mask[rows, :, cols, :] = np.packbits(bits, axis=-1, bitorder='little')
    return mask.reshape(num_blocks * _BLOCK, -1)


def _greedy_sweep(mask: np.ndarray, num_boxes: int) -> Tensor:
    """Bool ``[K]`` greedy keep mask (CPU) from the packed ``[B * T, W]`` bitmask."""
    width = mask.shape[1]
    data = mask.tobytes()
    removed = 0
    for row in mask.any(axis=1).nonzero()[0].tolist():  # rows that suppress something
        if not (removed >> row) & 1:
            removed |= int.from_bytes(data[row * width:(row + 1) * width], 'little')
    removed_bits = np.frombuffer(removed.to_bytes(width, 'little'), dtype=np.uint8)
    return torch.from_numpy(np.unpackbits(removed_bits, bitorder='little')[:num_boxes] == 0)


def _compiled_keep(boxes: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """Bool ``[K]`` keep mask of sorted boxes from the compiled op (rank scores: no ties)."""
    # Shifting each group by more than the span of all boxes keeps groups apart (the usual
    # trick of batched NMS); it may change IoU rounding in the last float bit.
    span = (boxes.max() - boxes.min()).clamp(min=0) + 1
    is_new = torch.ones_like(groups, dtype=torch.bool)
    is_new[1:] = groups[1:] != groups[:-1]
    group_rank = torch.cumsum(is_new, 0) - 1  # 0, 1, ... over the sorted groups
    shifted = boxes + group_rank.to(boxes)[:, None] * span
    ranks = torch.arange(boxes.shape[0], 0, -1, device=boxes.device, dtype=boxes.dtype)
    keep = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    keep[_COMPILED_NMS(shifted, ranks, iou_threshold)] = True
    return keep


def _nms(boxes: Tensor, scores: Tensor, groups: Tensor | None, iou_threshold: float) -> Tensor:
    """Greedy NMS within groups; see ``nms`` and ``batched_nms``."""
    order = torch.sort(scores, descending=True, stable=True).indices
    if order.numel() == 0:
        return order
    if groups is None:
        groups = torch.zeros_like(order)
    # Stable sort by group keeps the score order inside each group.
    order = order[torch.sort(groups[order], stable=True).indices]
    sorted_boxes, sorted_groups = boxes[order].float(), groups[order]
    if _COMPILED_NMS is not None:
        keep = _compiled_keep(sorted_boxes, sorted_groups, iou_threshold)
    else:
        mask = _suppression_bitmask(sorted_boxes, sorted_groups, iou_threshold)
        keep = _greedy_sweep(mask, order.numel()).to(order.device)
    kept = order[keep].sort().values  # ascending index, so that equal scores keep it
    return kept[torch.sort(scores[kept], descending=True, stable=True).indices]


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS.

    Args:
        boxes: ``[K, 4]`` boxes.
        scores: ``[K]`` scores.
        iou_threshold: A box is suppressed when its IoU with a kept higher-scoring box is
            greater than this.

    Returns:
        Long ``[K']`` indices of the kept boxes, by decreasing score (equal scores: lower
        index first).
    """
    _check(boxes, scores, 'nms')
    return _nms(boxes, scores, None, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Class-aware NMS: boxes with different ``idxs`` never suppress each other.

    Args:
        boxes: ``[K, 4]`` boxes.
        scores: ``[K]`` scores.
        idxs: ``[K]`` integer group (class) of each box.
        iou_threshold: IoU above which a lower-scoring box of the same group is suppressed.

    Returns:
        Long ``[K']`` indices of the kept boxes, by decreasing score (equal scores: lower
        index first).
    """
    _check(boxes, scores, 'batched_nms')
    if idxs.shape != scores.shape:
        raise ValueError(f'batched_nms: idxs must be [K] like scores, got {tuple(idxs.shape)}')
    return _nms(boxes, scores, idxs, iou_threshold)
