"""fcosdet's CheckpointHook in process: save order, confirmation, non-finite state, best file."""
import os
from pathlib import Path

import pytest
import torch
from mmengine.hooks import Hook

from fcosdet.engine.checkpoint_files import (
    find_resume_checkpoint,
    mark_unconfirmed,
    unconfirmed_reason,
)
from fcosdet.engine.hooks import CheckpointHook, NonFiniteCheckpointError
from fcosdet.engine.hooks.check_invalid_loss_hook import NonFiniteLossError
from fcosdet.registry import HOOKS

from ._toy import toy_runner


def _files(work_dir: Path) -> list[str]:
    return sorted(n for n in os.listdir(work_dir) if n.endswith('.pth') or n.endswith('.tmp'))


def _pointer(work_dir: Path) -> str | None:
    path = work_dir / 'last_checkpoint'
    return path.read_text() if path.exists() else None


class _Recorder(Hook):
    """After the checkpoint hook of each iteration: the files and ``last_checkpoint``."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.seen: list[tuple[int, list[str], str | None]] = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        work_dir = Path(runner.work_dir)
        self.seen.append((runner.iter + 1, _files(work_dir), _pointer(work_dir)))


class _SetWeight(Hook):
    """After iteration ``at``, before the save: write ``value`` into the model or optimizer."""

    priority = 'HIGH'

    def __init__(self, at: int, value: float, target: str) -> None:
        self.at, self.value, self.target = at, value, target

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 != self.at:
            return
        with torch.no_grad():
            if self.target == 'model':
                runner.model.fc.weight[0, 1] = self.value
            else:
                state = runner.optim_wrapper.optimizer.state[runner.model.fc.bias]
                state['momentum_buffer'][0] = self.value


def test_config_name_builds_the_crash_safe_hook():
    # MMDetection's spelling in a config gets fcosdet's hook in fcosdet's scope
    assert HOOKS.get('CheckpointHook') is CheckpointHook


def test_old_checkpoint_removed_only_after_the_next_one_is_confirmed(tmp_path):
    recorder = _Recorder()
    runner = toy_runner(tmp_path, max_iters=4, max_keep_ckpts=1)
    runner.register_hook(recorder)
    runner.train()
    assert recorder.seen == [
        (1, ['iter_1.pth'], None),  # saved, not confirmed yet: last_checkpoint not written
        (2, ['iter_1.pth', 'iter_2.pth'], 'iter_1.pth'),  # iteration 2 confirmed iter_1
        (3, ['iter_2.pth', 'iter_3.pth'], 'iter_2.pth'),  # iter_1 removed only now
        (4, ['iter_3.pth', 'iter_4.pth'], 'iter_3.pth'),
    ]
    # the end of training confirms the last one; relative to the work dir
    assert _files(tmp_path) == ['iter_4.pth'] and _pointer(tmp_path) == 'iter_4.pth'
    saved = torch.load(tmp_path / 'iter_4.pth', weights_only=True)
    assert saved['message_hub']['runtime_info']['keep_ckpt_ids'] == [3, 4]
    assert torch.equal(saved['state_dict']['fc.weight'], runner.model.fc.weight.detach())


@pytest.mark.parametrize('target, name', [('model', 'model fc.weight'),
                                          ('optimizer', 'optimizer state 1.momentum_buffer')])
@pytest.mark.parametrize('value', [float('inf'), float('nan')])
def test_non_finite_state_is_never_written(tmp_path, target, name, value):
    runner = toy_runner(tmp_path, max_iters=4,
                        custom_hooks=[_SetWeight(at=3, value=value, target=target)])
    with pytest.raises(NonFiniteCheckpointError) as err:
        runner.train()
    message = str(err.value)
    assert f'non-finite values in {name} at epoch 1, iteration 3: iter_3.pth was not written' \
        in message
    # iteration 3 (finite loss, computed before the poke) confirmed iter_2
    assert message.endswith(
        f'last good checkpoint (what --resume picks): {tmp_path / "iter_2.pth"}. Try a lower '
        'learning rate or a longer warm-up: --resume keeps the learning rate stored in the '
        f'checkpoint, so start from its weights instead (--cfg-options load_from='
        f'{tmp_path / "iter_2.pth"}, without --resume).')
    assert _files(tmp_path) == ['iter_2.pth'] and _pointer(tmp_path) == 'iter_2.pth'


def test_best_checkpoint_replaced_only_after_the_new_one_is_saved(tmp_path, monkeypatch):
    runner = toy_runner(tmp_path, max_iters=1, save_best='acc', rule='greater')
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, CheckpointHook))
    hook._save_best_checkpoint(runner, {'acc': 0.5})
    first = tmp_path / 'best_acc_iter_1.pth'
    assert first.is_file()
    runner.train_loop._iter = 2  # a later evaluation
    hook._save_best_checkpoint(runner, {'acc': 0.4})  # not better: nothing changes
    assert hook.best_ckpt_path == str(first) and first.is_file()

    def disk_full(*args, **kwargs):
        raise OSError('disk full')

    with monkeypatch.context() as patch:
        patch.setattr(runner, 'save_checkpoint', disk_full)
        with pytest.raises(OSError):
            hook._save_best_checkpoint(runner, {'acc': 0.7})
    assert first.is_file()  # mmengine's own hook has removed it at this point
    hook.best_ckpt_path = str(first)
    runner.message_hub.update_info('best_score', 0.5)
    hook._save_best_checkpoint(runner, {'acc': 0.7})
    assert not first.exists() and (tmp_path / 'best_acc_iter_2.pth').is_file()


def test_nan_stop_and_resume_agree_and_skip_the_unconfirmed_checkpoint(tmp_path):
    """lr 1e30: iteration 1 gives weights ~1e30 (finite, saved as iter_1.pth, unconfirmed),
    iteration 2 an infinite loss. Before: the message said "none" and --resume picked
    iter_1.pth, so even a lower lr went straight back into the infinite loss."""
    explode = dict(type='SGD', lr=1e30)
    torch.manual_seed(0)  # the toy's initial weights: gradients of order 1e-2
    runner = toy_runner(tmp_path, max_iters=4, optimizer=explode, name='explode',
                        custom_hooks=[dict(type='CheckInvalidLossHook')])
    with pytest.raises(NonFiniteLossError) as err:
        runner.train()
    assert str(err.value) == (
        'non-finite loss at iteration 2 (epoch 1): loss=inf. Training stopped; last good '
        'checkpoint (what --resume picks): none (iter_1.pth, saved just before, is not '
        'confirmed and --resume skips it), so --resume starts from scratch. Try a lower '
        'learning rate or a longer warm-up.')
    assert _files(tmp_path) == ['iter_1.pth'] and _pointer(tmp_path) is None
    assert torch.load(tmp_path / 'iter_1.pth', weights_only=True)['state_dict'][
        'fc.weight'].abs().max() > 1e25
    assert find_resume_checkpoint(str(tmp_path)) == (None, [
        f'{tmp_path / "iter_1.pth"}: saved just before the non-finite loss at iteration 2 '
        '(epoch 1)'])
    # the advice followed: a lower lr with --resume trains from scratch to the end
    resumed = toy_runner(tmp_path, max_iters=4, resume=True, name='lower_lr',
                         custom_hooks=[dict(type='CheckInvalidLossHook')])
    resumed.train()
    final = torch.load(tmp_path / 'iter_4.pth', weights_only=True)
    assert final['meta']['iter'] == 4
    assert final['state_dict']['fc.weight'].abs().max() < 10
    assert find_resume_checkpoint(str(tmp_path)) == (str(tmp_path / 'iter_4.pth'), [])


def test_a_checkpoint_saved_again_is_no_longer_skipped(tmp_path):
    ckpt = tmp_path / 'iter_1.pth'
    torch.save(dict(state_dict={}), ckpt)
    mark_unconfirmed(str(tmp_path), str(ckpt), 'saved just before a NaN')
    assert unconfirmed_reason(str(tmp_path), str(ckpt)) == f'{ckpt}: saved just before a NaN'
    os.utime(ckpt, ns=(1, 1))  # rewritten by a later run
    assert unconfirmed_reason(str(tmp_path), str(ckpt)) == ''
    assert find_resume_checkpoint(str(tmp_path)) == (str(ckpt), [])
