"""Small building blocks every dense head composes: towers, scales, flattening, reductions.

Shape letters: N images, L levels, R points/priors (all levels), H_l/W_l height/width of level l,
X channels of a map, D values per image of a meta entry.
"""
import copy

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, Scale
from mmengine.dist import all_reduce, get_world_size
from torch import Tensor

from fcosdet.models.layers.deform_conv import resolve_conv_cfg


def build_tower(in_channels: int, feat_channels: int, stacked_convs: int,
                conv_bias: bool | str = 'auto', norm_cfg: dict | None = None,
                conv_cfg: dict | None = None,
                last_conv_cfg: dict | None = None) -> nn.Sequential:
    """``stacked_convs`` × (3×3 conv, norm, ReLU) as MMDetection's heads build them.

    Module names are ``{i}.conv`` and ``{i}.gn`` / ``{i}.bn`` (MMDetection's state-dict names).

    Args:
        in_channels (int): Channels of the input map (first conv).
        feat_channels (int): Channels of every conv output.
        stacked_convs (int): Number of convs (0 gives an empty, identity tower).
        conv_bias (bool | str): Bias of the convs; 'auto' = no bias when a norm follows.
        norm_cfg (dict | None): Norm after each conv (copied, never mutated).
        conv_cfg (dict | None): Conv layer config (None = ``nn.Conv2d``).
        last_conv_cfg (dict | None): Conv config of the last conv only (e.g. a deformable
            conv); None uses ``conv_cfg``.

    Returns:
        nn.Sequential: maps ``[N, in_channels, H_l, W_l]`` to ``[N, feat_channels, H_l, W_l]``.
    """
    layers = []
    for i in range(stacked_convs):
        layer_conv_cfg = last_conv_cfg if (i == stacked_convs - 1 and last_conv_cfg) else conv_cfg
        # String types (e.g. 'DCNv2') resolve in fcosdet's registry whatever the scope.
        layer_conv_cfg = resolve_conv_cfg(copy.deepcopy(layer_conv_cfg))
        layers.append(ConvModule(in_channels if i == 0 else feat_channels, feat_channels, 3,
                                 padding=1, bias=conv_bias, conv_cfg=layer_conv_cfg,
                                 norm_cfg=copy.deepcopy(norm_cfg)))
    return nn.Sequential(*layers)


def build_scales(num_levels: int) -> nn.ModuleList:
    """One learnable scalar ``Scale(1.0)`` per level (state-dict names ``{l}.scale``)."""
    return nn.ModuleList([Scale(1.0) for _ in range(num_levels)])


def head_init_cfg(cls_conv_name: str) -> dict:
    """Default init: N(0, 0.01) convs with zero bias; the class conv's bias set for a 0.01
    prior probability (focal-loss initialisation)."""
    return dict(type='Normal', layer='Conv2d', std=0.01,
                override=dict(type='Normal', name=cls_conv_name, std=0.01, bias_prob=0.01))


def check_levels(x: tuple[Tensor, ...], num_levels: int, owner: str) -> None:
    """Raise a ValueError naming ``owner`` unless there is one map ``[N, X, H_l, W_l]`` per
    level."""
    if len(x) != num_levels:
        raise ValueError(f'{owner} got {len(x)} feature maps for {num_levels} levels')


def flatten_levels(maps: list[Tensor]) -> Tensor:
    """Concatenate per-level maps ``[N, X, H_l, W_l]`` into ``[N, R, X]`` (row-major points)."""
    return torch.cat([m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, m.shape[1]) for m in maps],
                     dim=1)


def grid_priors_like(prior_generator: object, maps: list[Tensor]) -> list[Tensor]:
    """Per level priors ``[R_l, D]`` for maps ``[N, X, H_l, W_l]``, on their device, in their
    dtype but at least float32: positions of bfloat16 maps (8 significant bits: 4 px apart at
    800 px) would be wrong."""
    dtype = torch.promote_types(maps[0].dtype, torch.float32)
    return prior_generator.grid_priors([tuple(m.shape[-2:]) for m in maps], dtype=dtype,
                                       device=maps[0].device)


def reduce_mean(value: Tensor) -> Tensor:
    """Average a tensor over all distributed ranks (identity when not distributed)."""
    if get_world_size() > 1:
        value = value.clone()
        all_reduce(value, op='mean')
    return value


def metas_tensor(batch_img_metas: list[dict], key: str, like: Tensor, owner: str) -> Tensor:
    """Stack ``meta[key]`` of every image into a ``[N, D]`` tensor with ``like``'s dtype/device.

    Raises:
        KeyError: naming ``owner``, the key and the images that lack it.
    """
    missing = [i for i, meta in enumerate(batch_img_metas) if key not in meta]
    if missing:
        raise KeyError(f'{owner}: img meta key {key!r} missing for images {missing}')
    return torch.as_tensor([list(meta[key]) for meta in batch_img_metas],
                           dtype=like.dtype, device=like.device)
