"""One training run per work dir: a lock file, removed at exit, stale when its process is gone.

Two runs in one work dir overwrite each other's checkpoints and ``last_checkpoint``, and each
removes the other's checkpoints as "stale" temporary files or beyond ``max_keep_ckpts``. The
lock file ``<work dir>/.train.lock`` holds the owner's host name and process id; a lock whose
process no longer runs on this host (killed by ``kill -9``, power cut) is taken over.
"""
import contextlib
import os
import os.path as osp
import socket
from collections.abc import Iterator

LOCK_NAME = '.train.lock'


class WorkDirLockedError(RuntimeError):
    """Another training run holds the work dir."""


def _pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # runs, as another user
        return True
    return True


def _owner(path: str) -> tuple[str, int] | None:
    """``(host, pid)`` written in a lock file; None if unreadable (half-written: stale)."""
    try:
        with open(path) as f:
            host, pid = f.read().split()
        return host, int(pid)
    except (OSError, ValueError):
        return None


def _try_create(path: str) -> bool:
    """Create the lock file with this process as owner; False if it exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, 'w') as f:
        f.write(f'{socket.gethostname()} {os.getpid()}\n')
    return True


def acquire_work_dir(work_dir: str) -> str | None:
    """Take the work dir's lock, taking over a stale one.

    Args:
        work_dir: The run's work dir (created if missing).

    Returns:
        A line about a stale lock that was taken over, or None.

    Raises:
        WorkDirLockedError: A live process (or one on another host) holds the lock; the
            message names the lock file, host and pid.
    """
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, LOCK_NAME)
    if _try_create(path):
        return None
    owner = _owner(path)
    here = socket.gethostname()
    if owner is not None and owner[1] == os.getpid() and owner[0] == here:
        return None  # this process (an earlier run in it ended without an exception path)
    if owner is not None and (owner[0] != here or _pid_alive(owner[1])):
        host, pid = owner
        raise WorkDirLockedError(
            f'the work dir {work_dir} is in use by another training run (process {pid} on '
            f'{host}, lock file {path}); use another --work-dir, or remove the lock file if '
            'that run is gone')
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    if not _try_create(path):  # another run took it over first
        raise WorkDirLockedError(f'the work dir {work_dir} was just taken by another training '
                                 f'run (lock file {path}); use another --work-dir')
    gone = f'process {owner[1]} on {owner[0]}' if owner else 'an unreadable owner'
    return f'took over the stale lock {path} of {gone}, which no longer runs'


def release_work_dir(work_dir: str) -> None:
    """Remove the work dir's lock if this process holds it."""
    path = osp.join(work_dir, LOCK_NAME)
    if _owner(path) == (socket.gethostname(), os.getpid()):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


@contextlib.contextmanager
def work_dir_lock(work_dir: str, enabled: bool = True) -> Iterator[str | None]:
    """Hold the work dir's lock for the ``with`` block (see :func:`acquire_work_dir`).

    Args:
        work_dir: The run's work dir.
        enabled: False: do nothing (e.g. on every process but rank 0).

    Yields:
        The line about a stale lock taken over, or None.
    """
    if not enabled:
        yield None
        return
    note = acquire_work_dir(work_dir)
    try:
        yield note
    finally:
        release_work_dir(work_dir)
