"""Which checkpoint ``--resume`` picks: damaged pointers, copied work dirs, leftover files."""
import shutil
from pathlib import Path

import pytest
import torch

from fcosdet.engine.checkpoint_files import (
    find_resume_checkpoint,
    remove_stale_tmp_files,
    write_last_checkpoint,
)

from ._toy import toy_runner


@pytest.fixture(scope='module')
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A toy run of 3 iterations keeping every checkpoint: iter_1..3.pth, pointer at iter_3."""
    work_dir = tmp_path_factory.mktemp('trained')
    toy_runner(work_dir, max_iters=3, max_keep_ckpts=-1, name='trained').train()
    return work_dir


@pytest.fixture
def work_dir(trained: Path, tmp_path: Path) -> Path:
    """A copy of the trained work dir (the original stays untouched)."""
    return Path(shutil.copytree(trained, tmp_path / 'copy'))




def test_pointer_is_relative_and_copied_dir_resumes_from_itself(work_dir, trained):
    assert (work_dir / 'last_checkpoint').read_text() == 'iter_3.pth'
    assert find_resume_checkpoint(str(work_dir)) == (str(work_dir / 'iter_3.pth'), [])


def test_absolute_pointer_of_the_original_dir_is_rebased(work_dir, trained):
    # what mmengine's own hook writes; the copy must not resume from the original dir, which
    # still exists
    (work_dir / 'last_checkpoint').write_text(str(trained / 'iter_2.pth'))
    assert find_resume_checkpoint(str(work_dir)) == (str(work_dir / 'iter_2.pth'), [])
    (work_dir / 'iter_2.pth').unlink()  # not in the copy: the named file is used
    assert find_resume_checkpoint(str(work_dir)) == (str(trained / 'iter_2.pth'), [])


def test_empty_pointer_falls_back_to_newest_checkpoint_that_loads(work_dir):
    (work_dir / 'last_checkpoint').write_text('')
    data = (work_dir / 'iter_3.pth').read_bytes()
    (work_dir / 'iter_3.pth').write_bytes(data[:len(data) // 2])  # truncated
    assert find_resume_checkpoint(str(work_dir)) == (str(work_dir / 'iter_2.pth'), [
        f'{work_dir / "last_checkpoint"} is empty',
        f'checkpoint {work_dir / "iter_3.pth"} cannot be read: truncated, empty or not a '
        'PyTorch checkpoint (RuntimeError: PytorchStreamReader failed reading zip archive: '
        'failed finding central directory)'])


def test_pointer_to_unreadable_file_falls_back(work_dir):
    (work_dir / 'iter_3.pth').write_text('not a checkpoint')
    path, skipped = find_resume_checkpoint(str(work_dir))
    assert path == str(work_dir / 'iter_2.pth')
    assert skipped == [f'checkpoint {work_dir / "iter_3.pth"} is corrupt or holds Python '
                       'objects other than tensors and plain containers (Unsupported operand '
                       '110); fcosdet only loads checkpoints with weights_only=True']


def test_no_checkpoint_gives_none(tmp_path):
    assert find_resume_checkpoint(str(tmp_path)) == (None, [])
    (tmp_path / 'last_checkpoint').write_text('iter_9.pth')  # dangling
    assert find_resume_checkpoint(str(tmp_path)) == (
        None, [f'checkpoint file not found: {tmp_path / "iter_9.pth"}'])


def test_stale_tmp_files_removed_and_pointer_written_atomically(tmp_path):
    for name in ('.iter_3.pth.1234.tmp', '.last_checkpoint.99.tmp', 'keep.tmp', 'iter_2.pth'):
        (tmp_path / name).write_text('x')
    assert remove_stale_tmp_files(str(tmp_path)) == ['.iter_3.pth.1234.tmp',
                                                     '.last_checkpoint.99.tmp']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['iter_2.pth', 'keep.tmp']
    write_last_checkpoint(str(tmp_path), str(tmp_path / 'iter_2.pth'))
    write_last_checkpoint(str(tmp_path), '/elsewhere/iter_1.pth')  # outside: kept absolute
    assert (tmp_path / 'last_checkpoint').read_text() == '/elsewhere/iter_1.pth'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['iter_2.pth', 'keep.tmp',
                                                         'last_checkpoint']


def test_runner_resumes_a_copied_dir_with_empty_pointer_and_leftovers(work_dir, trained):
    (work_dir / 'last_checkpoint').write_text('')
    (work_dir / '.iter_4.pth.4321.tmp').write_bytes(b'half a checkpoint')
    (work_dir / 'iter_3.pth').unlink()
    runner = toy_runner(work_dir, max_iters=4, max_keep_ckpts=-1, resume=True, name='resumed')
    runner.train()
    resumed_from = torch.load(trained / 'iter_2.pth', weights_only=True)
    assert resumed_from['meta']['iter'] == 2
    assert not list(work_dir.glob('*.tmp')) and not list(work_dir.glob('.*.tmp'))
    assert (work_dir / 'last_checkpoint').read_text() == 'iter_4.pth'
    final = torch.load(work_dir / 'iter_4.pth', weights_only=True)
    assert final['meta']['iter'] == 4
    # iterations 3 and 4 were trained again from iter_2's weights: the same data and the same
    # deterministic SGD steps give iter_3 of the original run on the way
    again = torch.load(work_dir / 'iter_3.pth', weights_only=True)
    original = torch.load(trained / 'iter_3.pth', weights_only=True)
    torch.testing.assert_close(again['state_dict'], original['state_dict'])
    assert sorted(p.name for p in trained.glob('iter_*.pth')) == ['iter_1.pth', 'iter_2.pth',
                                                                  'iter_3.pth']
