"""``--resume`` with a changed config: a changed lr is named in one warning (the checkpoint's
value is used), another optimizer type or another model is one error saying how to start
fresh. Before, the lr was ignored silently, AdamW<->SGD died with ``KeyError`` at the first
step and another ``num_classes`` with ``The size of tensor a ... must match``."""
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from fcosdet.engine.checkpoint_loading import CheckpointError
from fcosdet.engine.hooks.check_invalid_loss_hook import NonFiniteLossError
from fcosdet.engine.resume_checks import check_resumed_optimizer

from ._toy import toy_runner
from .test_checkpoint_hook import _SetWeight

SGD = dict(type='SGD', lr=0.01, momentum=0.9)


@pytest.fixture(scope='module')
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two iterations with SGD lr 0.01: iter_2.pth."""
    work_dir = tmp_path_factory.mktemp('resume_changed')
    toy_runner(work_dir, max_iters=2, name='changed').train()
    return work_dir


def _resumed(trained: Path, tmp_path: Path, optimizer: dict, name: str):
    work_dir = Path(shutil.copytree(trained, tmp_path / 'wd'))
    return work_dir, toy_runner(work_dir, max_iters=3, resume=True, optimizer=optimizer,
                                name=name)


def test_changed_lr_is_named_and_the_checkpoints_is_used(trained, tmp_path, monkeypatch):
    work_dir, runner = _resumed(trained, tmp_path, dict(SGD, lr=0.02), 'lr')
    warnings = []
    monkeypatch.setattr(runner.logger, 'warning', warnings.append)
    runner.train()
    ckpt = work_dir / 'iter_2.pth'
    assert (f'--resume from {ckpt}: the config changed lr 0.02 (config) vs 0.01 (checkpoint); '
            "resuming uses the checkpoint's values (mmengine restores the optimizer and "
            'schedule state); to use the config instead, start fresh from its weights: '
            f'--cfg-options load_from={ckpt} (without --resume)') in warnings
    assert runner.optim_wrapper.optimizer.param_groups[0]['lr'] == 0.01


def test_another_optimizer_type_is_one_error(trained, tmp_path):
    work_dir, runner = _resumed(trained, tmp_path, dict(type='AdamW', lr=0.01), 'type')
    with pytest.raises(CheckpointError) as err:
        runner.train()
    ckpt = work_dir / 'iter_2.pth'
    # amsgrad, capturable, ... are filled in by torch (keys newer torch versions added)
    assert str(err.value) == (
        f'--resume from {ckpt}: the checkpoint holds the state of another optimizer, the config '
        "asks for AdamW (it lacks 'betas', 'eps'); an optimizer state cannot be resumed into "
        'another optimizer; to use the config instead, start fresh from its weights: '
        f'--cfg-options load_from={ckpt} (without --resume)')


def test_type_named_from_the_stored_config(tmp_path):
    sgd = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    adamw = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=0.1)
    saved = dict(optimizer=adamw.state_dict(),
                 meta=dict(cfg="optim_wrapper = dict(optimizer=dict(type='AdamW', lr=0.1))\n"))
    with pytest.raises(CheckpointError, match=r"^--resume from c.pth: the checkpoint holds "
                       r"AdamW's state, the config asks for SGD \(it lacks 'dampening', "
                       r"'momentum'\)"):
        check_resumed_optimizer(sgd, saved, 'c.pth')
    # the stored config text is parsed, never run (it comes from the checkpoint)
    marker = tmp_path / 'ran'
    saved['meta']['cfg'] = f"import os\nos.system('touch {marker}')\n" + saved['meta']['cfg']
    with pytest.raises(CheckpointError, match="holds AdamW's state"):
        check_resumed_optimizer(sgd, saved, 'c.pth')
    assert not marker.exists()
    same = dict(optimizer=sgd.state_dict(),
                meta=dict(cfg="optim_wrapper = dict(optimizer=dict(type='torch.optim.SGD'))\n"))
    assert check_resumed_optimizer(sgd, same, 'c.pth') is None
    # an older torch saved no 'nesterov'/'foreach'/...: torch fills them in, not another type
    for key in ('nesterov', 'foreach', 'maximize', 'differentiable', 'fused'):
        del same['optimizer']['param_groups'][0][key]
    same['meta'] = {}
    assert check_resumed_optimizer(sgd, same, 'c.pth') is None
    assert sgd.param_groups[0]['nesterov'] is False  # the optimizer itself is untouched


def test_another_model_is_one_error(trained, tmp_path):
    work_dir, runner = _resumed(trained, tmp_path, SGD, 'model')
    runner.model.fc = nn.Linear(2, 2)  # another number of outputs (num_classes)
    with pytest.raises(CheckpointError) as err:
        runner.train()
    ckpt = work_dir / 'iter_2.pth'
    assert str(err.value) == (
        f'checkpoint {ckpt} does not fit the model: 2 tensor(s) differ in shape: fc.weight '
        '(checkpoint [1, 2], model [2, 2]), fc.bias (checkpoint [1], model [2]) (num_classes: '
        'checkpoint None, model None). Resuming needs the model it was saved from; to use the '
        f'config instead, start fresh from its weights: --cfg-options load_from={ckpt} '
        '(without --resume)')


def test_resume_after_a_nan_stop_warns_and_refuses_an_ignored_lr(tmp_path, monkeypatch):
    """iter_3 is poked to huge weights: iteration 4 gives inf, iter_2 is what --resume picks.
    Resuming iter_2 with a lowered lr would ignore it and run into the same stop: an error;
    with the same settings (the data fixed, say) a warning."""
    poke = _SetWeight(at=3, value=1e30, target='model')
    with pytest.raises(NonFiniteLossError, match='what --resume picks.: .*iter_2.pth'):
        toy_runner(tmp_path, max_iters=5, name='nan_run', max_keep_ckpts=1,
                   custom_hooks=[poke, dict(type='CheckInvalidLossHook')]).train()
    ckpt = tmp_path / 'iter_2.pth'
    lowered = toy_runner(tmp_path, max_iters=5, resume=True, name='nan_lowered',
                         optimizer=dict(SGD, lr=0.001))
    with pytest.raises(CheckpointError) as err:
        lowered.train()
    assert str(err.value) == (
        f'--resume from {ckpt}: the last run from it stopped with a non-finite loss at '
        'iteration 4 (epoch 1), and the config changed lr 0.001 (config) vs 0.01 (checkpoint), '
        'which resuming would not use (the optimizer and schedule state are restored); to use '
        f'the config instead, start fresh from its weights: --cfg-options load_from={ckpt} '
        '(without --resume)')
    same = toy_runner(tmp_path, max_iters=5, resume=True, name='nan_same')
    warnings = []
    monkeypatch.setattr(same.logger, 'warning', warnings.append)
    same.train()  # the poke is gone: it finishes
    assert (f'--resume from {ckpt}: the last run from it stopped with a non-finite loss at '
            'iteration 4 (epoch 1); with the same settings it will likely stop there again (to '
            'lower the learning rate, change it in the config and start fresh from its '
            f'weights: --cfg-options load_from={ckpt}, without --resume)') in warnings
    assert torch.load(tmp_path / 'iter_5.pth', weights_only=True)['meta']['iter'] == 5


def test_resume_never_runs_the_config_text_of_a_checkpoint(trained, tmp_path):
    """mmengine's resume ran ``meta['config']`` as a Python config (to compare gpu_ids)."""
    work_dir = Path(shutil.copytree(trained, tmp_path / 'wd'))
    marker = tmp_path / 'ran'
    ckpt = torch.load(work_dir / 'iter_2.pth', weights_only=True)
    ckpt['meta']['config'] = f"x = __import__('os').system('touch {marker}')\n"
    torch.save(ckpt, work_dir / 'iter_2.pth')
    toy_runner(work_dir, max_iters=3, resume=True, name='config_text').train()
    assert not marker.exists()
    assert torch.load(work_dir / 'iter_3.pth', weights_only=True)['meta']['iter'] == 3
