"""Process-group start-up on machines without CUDA (gloo backend), and agreeing on files.

mmengine's ``init_dist`` always calls ``torch.cuda.set_device``, which fails on a CPU-only
torch. On such machines fcosdet reads the rank layout that the launcher put into the environment
and starts a gloo process group itself; mmengine then finds the group initialised and skips its
own start-up.

Nodes need not share a filesystem, so a file one rank chooses (the checkpoint ``--resume``
continues from) is chosen on rank 0 and every rank checks that it has its own copy.
"""
import datetime
import os
import os.path as osp
import subprocess
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as torch_dist
from mmengine.dist import all_gather_object, broadcast_object_list, get_rank, get_world_size
from mmengine.logging import print_log

T = TypeVar('T')

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
DEFAULT_PORT = '29500'


def dist_backend(configured: str | None) -> str:
    """The backend to use: the configured one, but ``gloo`` when CUDA is not available.

    Args:
        configured: ``env_cfg.dist_cfg.backend`` of the config (``None``: not set).

    Returns:
        ``'gloo'`` on CPU-only machines (nccl needs CUDA), else ``configured`` or ``'nccl'``.
    """
    if not torch.cuda.is_available():
        return 'gloo'
    return configured or 'nccl'


def _slurm_master_addr() -> str:
    """First host of the Slurm allocation (``scontrol show hostnames``)."""
    nodes = os.environ['SLURM_NODELIST']
    out = subprocess.run(['scontrol', 'show', 'hostnames', nodes], check=True,
                         capture_output=True, text=True).stdout
    return out.split()[0]


def launcher_env(launcher: str) -> dict[str, str]:
    """``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` of this process.

    Args:
        launcher: ``'pytorch'`` (torchrun sets all five), ``'slurm'`` (from ``SLURM_*``) or
            ``'mpi'`` (from ``OMPI_COMM_WORLD_*``; ``MASTER_ADDR`` defaults to 127.0.0.1).

    Returns:
        The variables, already-set environment values taking precedence.

    Raises:
        KeyError: A variable the launcher should have set is missing.
    """
    env = os.environ
    if launcher == 'pytorch':
        names = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')
        missing = [n for n in names if n not in env]
        if missing:
            raise KeyError(f'--launcher pytorch: environment variables {missing} are not set; '
                           'start the script with torchrun (tools/dist_train.sh)')
        return {n: env[n] for n in names}
    if launcher == 'slurm':
        layout = dict(RANK=env['SLURM_PROCID'], WORLD_SIZE=env['SLURM_NTASKS'],
                      LOCAL_RANK=env['SLURM_LOCALID'])
        master = env.get('MASTER_ADDR') or _slurm_master_addr()
    elif launcher == 'mpi':
        layout = dict(RANK=env['OMPI_COMM_WORLD_RANK'], WORLD_SIZE=env['OMPI_COMM_WORLD_SIZE'],
                      LOCAL_RANK=env['OMPI_COMM_WORLD_LOCAL_RANK'])
        master = env.get('MASTER_ADDR', '127.0.0.1')
    else:
        raise ValueError(f'launcher must be one of {LAUNCHERS[1:]}, got {launcher!r}')
    return dict(layout, MASTER_ADDR=master, MASTER_PORT=env.get('MASTER_PORT', DEFAULT_PORT))


def init_cpu_dist(launcher: str, timeout_s: int = 1800) -> None:
    """Start a gloo process group for ``launcher`` (no CUDA calls).

    Args:
        launcher: ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        timeout_s: Collective timeout in seconds.
    """
    os.environ.update(launcher_env(launcher))
    torch_dist.init_process_group(
        backend='gloo', init_method='env://', timeout=datetime.timedelta(seconds=timeout_s))
    print_log(f'CUDA is not available: started a gloo process group (rank '
              f'{torch_dist.get_rank()} of {torch_dist.get_world_size()})', logger='current')


def decided_on_rank0(decide: Callable[[], T]) -> T:
    """``decide()`` run on rank 0 only, its result returned on every rank.

    Args:
        decide: A function of rank 0's own files (e.g. the newest checkpoint of its work dir).

    Returns:
        Rank 0's result (picklable), on every rank; ``decide()`` itself when not distributed.
    """
    if get_world_size() == 1:
        return decide()
    box = [decide() if get_rank() == 0 else None]
    broadcast_object_list(box)
    return box[0]


def check_file_on_every_rank(path: str, what: str) -> None:
    """Raise on every rank unless every rank has the local file ``path``.

    A rank that lacks it would otherwise fail alone (or, resuming from scratch, run other
    iterations than the others) while the other ranks wait in a collective.

    Args:
        path: A local file (URIs with ``://`` are not checked).
        what: What the file is for, for the message (e.g. ``'--resume'``).

    Raises:
        FileNotFoundError: Some rank has no file at ``path``; names the ranks.
    """
    if '://' in path:
        return
    found = all_gather_object(osp.isfile(path))
    missing = [rank for rank, ok in enumerate(found) if not ok]
    if missing:
        raise FileNotFoundError(
            f'{what}: {path} is missing on rank(s) {missing} of {len(found)}; machines that '
            'share no folder each need a copy of it at this path')
