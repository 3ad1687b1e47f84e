"""A save right after the loss exploded: huge but finite weights, NaN on the next iteration.

The poisoned checkpoint is never confirmed, so the stop message and ``--resume`` name the one
before it (real training subprocesses, weights poisoned by ``fault_probes.PoisonWeightsHook``).
"""
import torch

from ._faults import train, write_fault_config


def test_nan_after_poisoned_save_names_and_resumes_the_confirmed_checkpoint(tiny_config,
                                                                            tmp_path):
    flag = tmp_path / 'poisoned'
    config = write_fault_config(
        tmp_path / 'poison.py', tiny_config, max_iters=5,
        extra_hooks=f", dict(type='PoisonWeightsHook', at_iter=3, flag_file='{flag}')")
    work_dir = tmp_path / 'wd'
    result = train(config, work_dir)
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith('train.py: error: non-finite loss at iteration 4 (epoch 1): ')
    assert last_line.endswith(
        f'last good checkpoint (what --resume picks): {work_dir / "iter_2.pth"} (iter_3.pth, '
        'saved just before, is not confirmed and --resume skips it). Try a lower learning '
        'rate or a longer warm-up: --resume keeps the learning rate stored in the checkpoint, '
        f'so start from its weights instead (--cfg-options load_from={work_dir / "iter_2.pth"}'
        ', without --resume).')
    poisoned = torch.load(work_dir / 'iter_3.pth', weights_only=True)['state_dict']
    assert all(v.isfinite().all() for v in poisoned.values())  # finite: saved, unconfirmed
    assert poisoned['neck.fpn_convs.0.conv.weight'].abs().max() > 1e15
    assert (work_dir / 'last_checkpoint').read_text() == 'iter_2.pth'

    resumed = train(config, work_dir, '--resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (log,) = sorted(work_dir.glob('2*/2*.log'))[-1:]
    assert f'Resuming from {work_dir / "iter_2.pth"}' in log.read_text()
    final = torch.load(work_dir / 'iter_5.pth', weights_only=True)
    assert final['meta']['iter'] == 5
    assert all(v.abs().max() < 1e6 for v in final['state_dict'].values() if v.is_floating_point())
    assert sorted(p.name for p in work_dir.glob('iter_*.pth')) == ['iter_5.pth']
