import numpy as np
import pytest
from mmengine.runner import Runner

from fcosdet.datasets.samplers import AspectRatioBatchSampler


class SizesDataset:
    """Only what the batch sampler reads: ``get_data_info(idx)`` with width/height."""

    def __init__(self, sizes):
        self.sizes = sizes

    def __len__(self):
        return len(self.sizes)

    def get_data_info(self, idx):
        width, height = self.sizes[idx]
        return dict(width=width, height=height)


SIZES = [(60, 40), (30, 50), (50, 50), (20, 80), (90, 30), (40, 41), (70, 20), (10, 30), (5, 4)]
PORTRAIT = {1, 3, 5, 7}


@pytest.mark.parametrize('drop_last', [False, True])
def test_batches_never_mix_orientations_before_the_leftovers(drop_last):
    sampler = _ListSampler(SizesDataset(SIZES), list(range(len(SIZES))))
    batches = list(AspectRatioBatchSampler(sampler, batch_size=2, drop_last=drop_last))
    # landscape 0,2,4,6,8 and portrait 1,3,5,7 fill buckets in sampler order
    full = [[0, 2], [1, 3], [4, 6], [5, 7]]
    assert batches == (full if drop_last else full + [[8]])
    assert len(AspectRatioBatchSampler(sampler, 2, drop_last)) == len(batches)


def test_every_index_once_with_shuffled_sampler():
    rng = np.random.default_rng(1)
    sizes = [tuple(s) for s in rng.integers(10, 100, (101, 2)).tolist()]
    dataset = SizesDataset(sizes)
    order = rng.permutation(len(sizes)).tolist()
    batch_sampler = AspectRatioBatchSampler(_ListSampler(dataset, order), batch_size=4)
    batches = list(batch_sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(sizes)))
    assert len(batches) == len(batch_sampler) == 26
    mixed = [b for b in batches if len({sizes[i][0] < sizes[i][1] for i in b}) > 1]
    assert len(mixed) <= 1 and all(len(b) == 4 for b in batches[:-1])
    assert all(b in batches[-2:] for b in mixed)  # only the leftovers may mix


class _ListSampler:
    def __init__(self, dataset, order):
        self.dataset, self.order = dataset, order

    def __iter__(self):
        return iter(self.order)

    def __len__(self):
        return len(self.order)


def test_bad_batch_size():
    with pytest.raises(ValueError, match='batch_size'):
        AspectRatioBatchSampler(_ListSampler(SizesDataset(SIZES), [0, 1]), batch_size=0)


def test_runner_builds_it_from_config(make_coco):
    root = make_coco()
    with pytest.warns(UserWarning, match='dropped 2'):
        loader = Runner.build_dataloader(dict(
            batch_size=2, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True, seed=3),
            batch_sampler=dict(type='AspectRatioBatchSampler'),
            dataset=dict(type='CocoDataset', data_root=str(root),
                         ann_file='annotations/instances.json', data_prefix=dict(img='images/'),
                         filter_cfg=dict(filter_empty_gt=False, min_size=0), pipeline=[
                             dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                             dict(type='Resize', scale=(64, 64), keep_ratio=True),
                             dict(type='PackDetInputs')])))
    assert isinstance(loader.batch_sampler, AspectRatioBatchSampler)
    batches = [[(s.img_id, s.ori_shape) for s in batch['data_samples']] for batch in loader]
    assert sorted(img_id for b in batches for img_id, _ in b) == [10, 20, 30, 40, 50]
    assert [len(b) for b in batches] == [2, 2, 1]
    for batch in batches[:2]:  # full batches: one orientation (20 and 50 are the portraits)
        assert len({h > w for _, (h, w) in batch}) == 1
