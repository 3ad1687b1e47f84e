"""Gathering a metric's per-rank results on rank 0 through the process group, never a folder.

mmengine's ``BaseMetric.evaluate`` gathers with ``collect_results(..., device='cpu')`` by
default: rank 0 names a temporary folder (``.dist_test/tmpXXXX`` in the working directory,
``/tmp`` in older versions), every rank pickles its part into it, and rank 0 reads them all. On
nodes that share no filesystem the other nodes cannot open that folder (``No such file or
directory: '.dist_test/tmpXXXX/part_1.pkl'``; open-mmlab/mmengine#557,
open-mmlab/mmdetection#2195). Here ``'cpu'`` means that the parts travel to rank 0 in memory
over a gloo process group, so the nodes share only the network, as training already needs.
"""
from __future__ import annotations

import logging
from typing import Any

import torch.distributed as torch_dist
from mmengine.dist import broadcast_object_list, collect_results, get_dist_info, is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

# (default group, gloo group beside it): made once per default group (e.g. nccl); holding the
# default group keeps a destroyed one from being mistaken for a new one
_GLOO_GROUP: list[tuple[Any, Any]] = []


def _cpu_group() -> Any:
    """The process group for CPU objects: the default one if it is gloo, else a gloo group."""
    if torch_dist.get_backend() == 'gloo':
        return None
    world = torch_dist.group.WORLD
    if not _GLOO_GROUP or _GLOO_GROUP[0][0] is not world:
        _GLOO_GROUP[:] = [(world, torch_dist.new_group(backend='gloo'))]
    return _GLOO_GROUP[0][1]


def interleave_parts(parts: list[list]) -> list:
    """The ranks' parts merged in dataset order.

    mmengine's samplers give rank ``r`` of ``W`` the dataset indices ``r, r + W, r + 2W, ...``,
    so taking one result from each part in turn restores the order; a shorter part (no padding)
    simply ends first.

    Args:
        parts: The results of each rank, in rank order.

    Returns:
        All results, interleaved.
    """
    longest = max((len(part) for part in parts), default=0)
    return [part[i] for i in range(longest) for part in parts if i < len(part)]


def gather_results(part: list, size: int, device: str = 'cpu') -> list | None:
    """All ranks' results on rank 0, without a shared folder.

    Args:
        part: This rank's results (picklable objects).
        size: Length of the dataset: the sampler's padding beyond it is dropped.
        device: ``'cpu'``: sent in memory over gloo (default group, or a gloo group beside
            nccl). ``'gpu'``/``'npu'``: mmengine's device gather (``all_gather_object``, no
            folder either).

    Returns:
        The first ``size`` results in dataset order on rank 0, ``None`` on the other ranks.
    """
    rank, world_size = get_dist_info()
    if world_size == 1:
        return part[:size]
    if device != 'cpu':
        return collect_results(part, size, device)
    parts: list | None = [None] * world_size if rank == 0 else None
    torch_dist.gather_object(part, parts, dst=0, group=_cpu_group())
    if rank != 0:
        return None
    return interleave_parts(parts)[:size]


def evaluate_gathered(metric: BaseMetric, size: int) -> dict:
    """``metric.evaluate(size)`` as in mmengine, but gathered by :func:`gather_results`.

    Rank 0 computes the metrics from every rank's results and broadcasts them; every rank
    returns the same dict (keys prefixed with ``metric.prefix``) and clears its results.

    Args:
        metric: A metric whose ``results`` hold this rank's processed samples.
        size: Length of the dataset.

    Returns:
        The metrics, on every rank.
    """
    if not metric.results:
        print_log(f'{type(metric).__name__}: this rank processed no samples', logger='current',
                  level=logging.WARNING)
    results = gather_results(metric.results, size, metric.collect_device)
    metrics: list[dict | None] = [None]
    if is_main_process():
        computed = metric.compute_metrics(results)
        metrics = [{f'{metric.prefix}/{key}' if metric.prefix else key: value
                    for key, value in computed.items()}]
    broadcast_object_list(metrics)
    metric.results.clear()
    return metrics[0]
