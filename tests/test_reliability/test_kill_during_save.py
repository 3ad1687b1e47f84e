"""Real faults: kill -9 of tools/train.py while it writes a checkpoint, then ``--resume``.

The run keeps one checkpoint (``max_keep_ckpts=1``, as the demo config) and saves every
iteration. The normal suite has one kill that lands mid-save; ``-m faults`` runs the loops
(many kills, and mmengine's own hook as a control that loses the checkpoint).
"""
import shutil
from pathlib import Path

import pytest
import torch

from ._faults import kill_during_save, tmp_files, train, write_fault_config

MAX_ITERS = 6


def _kill_mid_save(config: Path, work_dir: Path, attempts: int = 6) -> None:
    """Kill runs until one kill lands while a checkpoint is being written."""
    for _ in range(attempts):
        shutil.rmtree(work_dir, ignore_errors=True)
        if kill_during_save(config, work_dir):
            return
    pytest.fail(f'no kill landed mid-save in {attempts} runs')  # a save takes milliseconds


def _checkpoints(work_dir: Path) -> list[str]:
    return sorted((p.name for p in work_dir.glob('iter_*.pth')),
                  key=lambda n: int(n[5:-4]))


def _assert_resumable_and_resume(config: Path, work_dir: Path) -> None:
    """A named, loadable checkpoint survives; ``--resume`` continues from it to the end."""
    pointer = (work_dir / 'last_checkpoint').read_text()
    assert pointer in _checkpoints(work_dir), (pointer, sorted(work_dir.iterdir()))
    saved_iter = torch.load(work_dir / pointer, weights_only=True)['meta']['iter']
    result = train(config, work_dir, '--resume')
    assert result.returncode == 0, result.stderr[-3000:]
    (log,) = sorted(work_dir.glob('2*/2*.log'))[-1:]
    text = log.read_text()
    assert f'Resuming from {work_dir / pointer}' in text
    assert 'left by a save that was killed' in text
    assert f'Iter(train) [{saved_iter + 1}/{MAX_ITERS}]' in text  # continued, not restarted
    assert f'Iter(train) [{saved_iter}/{MAX_ITERS}]' not in text
    assert tmp_files(work_dir) == []
    assert _checkpoints(work_dir) == [f'iter_{MAX_ITERS}.pth']
    assert (work_dir / 'last_checkpoint').read_text() == f'iter_{MAX_ITERS}.pth'


def test_kill_during_save_keeps_a_checkpoint_and_resume_continues(tiny_config, tmp_path):
    config = write_fault_config(tmp_path / 'fault.py', tiny_config, max_iters=MAX_ITERS)
    work_dir = tmp_path / 'wd'
    _kill_mid_save(config, work_dir)
    # the killed save's file is still half-written: the previous checkpoint must be intact
    assert any(n.startswith('.iter_') for n in tmp_files(work_dir))
    _assert_resumable_and_resume(config, work_dir)


@pytest.mark.faults
def test_many_kills_with_resume_in_between(tiny_config, tmp_path):
    """Ten kill -9 during saves of one run resumed each time; it still reaches the end."""
    config = write_fault_config(tmp_path / 'fault.py', tiny_config, max_iters=30)
    work_dir = tmp_path / 'wd'
    landed = 0
    for round_ in range(10):
        resume = ('--resume',) if round_ else ()
        landed += kill_during_save(config, work_dir, 3 * round_ + 2, *resume)
        pointer = (work_dir / 'last_checkpoint').read_text()
        assert pointer in _checkpoints(work_dir), (pointer, sorted(work_dir.iterdir()))
        torch.load(work_dir / pointer, weights_only=True)
    assert landed >= 5
    result = train(config, work_dir, '--resume')
    assert result.returncode == 0, result.stderr[-3000:]
    assert _checkpoints(work_dir) == ['iter_30.pth'] and tmp_files(work_dir) == []


@pytest.mark.faults
def test_mmengine_hook_loses_the_checkpoint_control(tiny_config, tmp_path):
    """Control: mmengine's own hook removes the old checkpoint first; the same kill leaves
    ``last_checkpoint`` naming a deleted file (what fcosdet's hook prevents)."""
    config = write_fault_config(tmp_path / 'fault.py', tiny_config, max_iters=MAX_ITERS,
                                hook='mmengine.CheckpointHook')
    work_dir = tmp_path / 'wd'
    _kill_mid_save(config, work_dir)
    named = Path((work_dir / 'last_checkpoint').read_text())
    assert not named.exists() and _checkpoints(work_dir) == []
