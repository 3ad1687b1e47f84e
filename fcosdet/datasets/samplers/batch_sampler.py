"""Batch sampler that never mixes landscape and portrait images in one batch."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import BatchSampler, Sampler

from fcosdet.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class AspectRatioBatchSampler(BatchSampler):
    """Group the indices of a sampler into batches of one orientation.

    Indices come in the order of ``sampler`` (mmengine's ``DefaultSampler`` shuffles and
    shards them per rank) and are put in one of two buckets, landscape (``width >= height``)
    or portrait; a bucket is emitted as a batch when it holds ``batch_size`` indices, so
    padding to the largest image of a batch wastes little. Indices left over at the end are
    emitted together (mixed) in batches of ``batch_size`` unless ``drop_last``.

    Args:
        sampler: Yields dataset indices; ``sampler.dataset`` must provide
            ``get_data_info(idx)`` with ``width`` and ``height``.
        batch_size: Images per batch.
        drop_last: Drop the last incomplete batch.
    """

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool = False) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f'AspectRatioBatchSampler: batch_size must be a positive int, '
                             f'got {batch_size!r}')
        if not hasattr(sampler, 'dataset'):
            raise TypeError('AspectRatioBatchSampler: the sampler must have a `dataset` '
                            f'attribute, got {type(sampler).__name__}')
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last
        self._portrait: np.ndarray | None = None

    def _portrait_flags(self) -> np.ndarray:
        """bool [len(dataset)]: True where the image is taller than wide (computed once)."""
        if self._portrait is None:
            dataset = self.sampler.dataset
            sizes = np.array([(info['width'], info['height']) for info in
                              map(dataset.get_data_info, range(len(dataset)))]).reshape(-1, 2)
            self._portrait = sizes[:, 0] < sizes[:, 1]
        return self._portrait

    def __iter__(self) -> Iterator[list[int]]:
        portrait = self._portrait_flags()
        buckets: tuple[list[int], list[int]] = ([], [])
        for idx in self.sampler:
            bucket = buckets[int(portrait[idx])]
            bucket.append(idx)
            if len(bucket) == self.batch_size:
                yield bucket[:]
                bucket.clear()
        left = buckets[0] + buckets[1]
        while len(left) >= self.batch_size or (left and not self.drop_last):
            yield left[:self.batch_size]
            left = left[self.batch_size:]

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size
