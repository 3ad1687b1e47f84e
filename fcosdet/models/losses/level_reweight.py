"""DDOD's per-level loss reweighting from the number of positives of each FPN level.

Shape letters: L levels, N images, R priors (all levels), R_l priors of level l.
"""
import torch
from torch import Tensor


def count_level_positives(pos_mask: Tensor, num_level_priors: list[int]) -> Tensor:
    """Positives of each level, summed over the images.

    Args:
        pos_mask (Tensor): Bool ``[N, R]``, True for the priors assigned to a gt box.
        num_level_priors (list[int]): L counts ``R_l`` with ``sum(R_l) = R``.

    Returns:
        Tensor: Float64 ``[L]`` number of positives per level.
    """
    per_prior = pos_mask.sum(dim=0).double()  # [R]
    return torch.stack([p.sum() for p in per_prior.split(num_level_priors)])


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
