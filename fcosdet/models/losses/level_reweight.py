"""DDOD's per-level loss reweighting from the number of positives of each FPN level.

Shape letters: L levels, N images, R priors (all levels), C classes (background is label C).
"""
import torch
from torch import Tensor


def count_level_positives(labels: Tensor, num_level_priors: list[int],
                          num_classes: int) -> Tensor:
    """Positives of each level, summed over the images.

    Args:
        labels (Tensor): Long ``[N, R]`` labels in ``[0, C]`` (C = background).
        num_level_priors (list[int]): L counts ``R_l`` with ``sum(R_l) = R``.
        num_classes (int): C.

    Returns:
        Tensor: Float64 ``[L]`` number of positives per level.
    """
    pos = ((labels >= 0) & (labels < num_classes)).sum(dim=0)  # [R]
    return torch.stack([p.sum() for p in pos.split(num_level_priors)]).double()


def level_reweight_factors(num_pos_per_level: Tensor) -> Tensor:
    """Loss factor of each level: 2 for the fewest positives, 1 for the most, linear between.

    ``factor_l = 2 − (n_l − min n) / (max n − min n + 1e-10)``; all levels get 2 when every
    count is equal (e.g. all zero). Levels with few positives (usually the coarse ones) are
    weighted up so that they are not drowned by the crowded fine levels.

    Args:
        num_pos_per_level (Tensor): ``[L]`` positives per level (any float dtype).

    Returns:
        Tensor: ``[L]`` factors in (1, 2], same dtype.
    """
    low, high = num_pos_per_level.min(), num_pos_per_level.max()
    return 2.0 - (num_pos_per_level - low) / (high - low + 1e-10)
