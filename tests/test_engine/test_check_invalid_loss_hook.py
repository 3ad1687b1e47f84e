import math
from types import SimpleNamespace

import pytest
import torch
from mmengine.hooks import CheckpointHook
from mmengine.logging import MessageHub
from mmengine.runner.priority import get_priority

from fcosdet.engine.hooks import CheckInvalidLossHook, NonFiniteLossError
from fcosdet.engine.hooks.check_invalid_loss_hook import non_finite_terms
from fcosdet.registry import HOOKS


def _runner(iteration: int, epoch: int, work_dir: str = '/nonexistent') -> SimpleNamespace:
    hub = MessageHub.get_instance('invalid_loss_test')
    hub.update_info('last_ckpt', '/work/epoch_2.pth')  # saved, maybe not confirmed: not named
    return SimpleNamespace(iter=iteration, epoch=epoch, message_hub=hub, work_dir=work_dir,
                           hooks=[], rank=0)


def test_non_finite_terms_picks_only_bad_losses():
    outputs = {'loss': torch.tensor(float('nan')), 'loss_cls': torch.tensor(0.5),
               'loss_bbox': torch.tensor(float('inf')), 'grad_norm': float('nan'),
               'loss_centerness': 0.3}
    bad = non_finite_terms(outputs)
    assert list(bad) == ['loss', 'loss_bbox']
    assert math.isnan(bad['loss']) and bad['loss_bbox'] == math.inf
    assert non_finite_terms({'loss': torch.tensor(1.0)}) == {}
    assert non_finite_terms(None) == {}


def test_hook_raises_naming_iteration_and_terms(tmp_path):
    hook = CheckInvalidLossHook()
    (tmp_path / 'last_checkpoint').write_text('epoch_1.pth')  # the last confirmed checkpoint
    torch.save(dict(state_dict={}), tmp_path / 'epoch_1.pth')  # it loads: --resume picks it
    runner = _runner(iteration=6, epoch=1, work_dir=str(tmp_path))
    hook.after_train_iter(runner, 0, outputs={'loss': torch.tensor(2.0)})  # finite: no error
    with pytest.raises(NonFiniteLossError) as err:
        hook.after_train_iter(runner, 0, outputs={'loss': torch.tensor(float('nan')),
                                                  'loss_cls': torch.tensor(0.1),
                                                  'loss_bbox': torch.tensor(float('-inf'))})
    msg = str(err.value)
    assert 'iteration 7' in msg and 'epoch 2' in msg
    assert 'loss_bbox=-inf' in msg and 'loss=nan' in msg and 'loss_cls' not in msg
    assert f'last good checkpoint (what --resume picks): {tmp_path / "epoch_1.pth"}.' in msg
    assert 'epoch_2' not in msg


def test_hook_interval_and_validation():
    hook = CheckInvalidLossHook(interval=2)
    nan = {'loss': torch.tensor(float('nan'))}
    hook.after_train_iter(_runner(iteration=0, epoch=0), 0, outputs=nan)  # iter 1: skipped
    with pytest.raises(NonFiniteLossError):
        hook.after_train_iter(_runner(iteration=1, epoch=0), 0, outputs=nan)
    with pytest.raises(ValueError, match='interval'):
        CheckInvalidLossHook(interval=0)


def test_hook_runs_before_checkpoint_hook_and_is_registered():
    # a bad step must raise before CheckpointHook could save it
    assert get_priority(CheckInvalidLossHook.priority) < get_priority(CheckpointHook.priority)
    assert HOOKS.get('CheckInvalidLossHook') is CheckInvalidLossHook
