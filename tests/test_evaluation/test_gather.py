"""Gathering metric results without a shared folder (two ranks on two nodes:
tests/test_engine/test_multinode.py; two ranks of CocoMetric: test_coco_metric.py)."""
import pickle

import pytest
import torch
import torch.distributed as torch_dist
from mmengine.evaluator import BaseMetric, DumpResults

from fcosdet.evaluation.metrics import DumpDetResults, gather
from fcosdet.evaluation.metrics.gather import evaluate_gathered, interleave_parts


def test_interleave_restores_the_sampler_order():
    # DefaultSampler, 7 samples on 3 ranks, padded to 9: rank r gets r, r+3, r+6 (pads 0, 1)
    parts = [[0, 3, 6], [1, 4, 0], [2, 5, 1]]
    assert interleave_parts(parts)[:7] == [0, 1, 2, 3, 4, 5, 6]
    # a sampler without padding leaves the last ranks one short
    assert interleave_parts([['a', 'c', 'e'], ['b', 'd']]) == ['a', 'b', 'c', 'd', 'e']
    assert interleave_parts([[], []]) == []


class _Sum(BaseMetric):
    default_prefix = 'toy'

    def process(self, data_batch, data_samples):
        self.results.extend(data_samples)

    def compute_metrics(self, results):
        return dict(total=sum(results), count=len(results))


def test_evaluate_gathered_on_one_process_drops_padding_and_clears():
    metric = _Sum()
    metric.process(None, [1, 2, 4, 8])
    assert evaluate_gathered(metric, size=3) == {'toy/total': 7, 'toy/count': 3}
    assert metric.results == []


@pytest.fixture
def one_rank_group(tmp_path):
    torch_dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0,
                                  world_size=1)
    yield
    torch_dist.destroy_process_group()


def test_cpu_group_is_gloo_beside_another_default_backend(one_rank_group, monkeypatch):
    assert gather._cpu_group() is None  # the default group is gloo already
    monkeypatch.setattr(torch_dist, 'get_backend', lambda group=None: 'nccl')
    monkeypatch.setattr(gather, '_GLOO_GROUP', [])
    group = gather._cpu_group()
    assert group is not None and gather._cpu_group() is group  # made once
    monkeypatch.undo()
    assert torch_dist.get_backend(group) == 'gloo'


def test_dump_det_results_writes_what_mmengine_dumps(tmp_path):
    samples = [dict(img_id=3, pred_instances=dict(bboxes=torch.rand(2, 4),
                                                  scores=torch.rand(2),
                                                  labels=torch.tensor([0, 1])))]
    ours = DumpDetResults(str(tmp_path / 'ours.pkl'))
    theirs = DumpResults(str(tmp_path / 'theirs.pkl'))
    for metric in (ours, theirs):
        metric.process({}, samples * 2)
        assert metric.evaluate(size=1) == {}
    loaded = [pickle.loads((tmp_path / name).read_bytes()) for name in ('ours.pkl',
                                                                       'theirs.pkl')]
    assert len(loaded[0]) == 1 and loaded[0][0]['img_id'] == 3
    torch.testing.assert_close(loaded[0], loaded[1])
    with pytest.raises(ValueError, match='pkl'):
        DumpDetResults(str(tmp_path / 'out.json'))
