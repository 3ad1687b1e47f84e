"""One training run per work dir: a second tools/train.py in the same work dir stops in one
line; a lock left by a killed run is taken over; the lock is removed at exit."""
import os
import socket
import subprocess
import sys

import pytest

from fcosdet.utils.error_format import error_message
from fcosdet.utils.work_dir_lock import (
    LOCK_NAME,
    WorkDirLockedError,
    acquire_work_dir,
    work_dir_lock,
)

from .test_analysis_tools import load_tool

TRAIN = load_tool('train.py')


@pytest.fixture
def other_process():
    """A live process that is not this one (the 'first run')."""
    proc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    yield proc.pid
    proc.kill()
    proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def test_second_train_run_in_the_same_work_dir_stops_in_one_line(tiny_config, tmp_path,
                                                                 other_process):
    lock = tmp_path / LOCK_NAME
    lock.write_text(f'{socket.gethostname()} {other_process}\n')
    with pytest.raises(WorkDirLockedError) as err:  # run_cli prints it as 'train.py: error: ...'
        TRAIN.main([tiny_config, '--work-dir', str(tmp_path)])
    assert error_message(err.value) == (
        f'the work dir {tmp_path} is in use by another training run (process '
        f'{other_process} on {socket.gethostname()}, lock file {lock}); use another '
        '--work-dir, or remove the lock file if that run is gone')
    assert lock.read_text() == f'{socket.gethostname()} {other_process}\n'  # not taken
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]  # nothing written


def test_lock_is_held_during_the_run_and_removed_at_exit(tmp_path):
    lock = tmp_path / 'wd' / LOCK_NAME
    with work_dir_lock(str(tmp_path / 'wd')) as note:
        assert note is None
        assert lock.read_text() == f'{socket.gethostname()} {os.getpid()}\n'
    assert not lock.exists()
    with pytest.raises(RuntimeError, match='boom'), work_dir_lock(str(tmp_path / 'wd')):
        raise RuntimeError('boom')
    assert not lock.exists()  # removed on an error too


def test_stale_lock_of_a_killed_run_is_taken_over(tmp_path):
    dead = _dead_pid()
    lock = tmp_path / LOCK_NAME
    lock.write_text(f'{socket.gethostname()} {dead}\n')
    note = acquire_work_dir(str(tmp_path))
    assert note == (f'took over the stale lock {lock} of process {dead} on '
                    f'{socket.gethostname()}, which no longer runs')
    assert lock.read_text() == f'{socket.gethostname()} {os.getpid()}\n'
    lock.write_text('')  # a lock half-written by a killed run
    assert 'unreadable owner' in acquire_work_dir(str(tmp_path))
    lock.write_text(f'elsewhere {dead}\n')  # another host: cannot tell, refused
    with pytest.raises(WorkDirLockedError, match=f'process {dead} on elsewhere'):
        acquire_work_dir(str(tmp_path))
