"""Process-group start-up on machines without CUDA (gloo backend).

mmengine's ``init_dist`` always calls ``torch.cuda.set_device``, which fails on a CPU-only
torch. On such machines fcosdet reads the rank layout that the launcher put into the environment
and starts a gloo process group itself; mmengine then finds the group initialised and skips its
own start-up.
"""
import datetime
import os
import subprocess

import torch
import torch.distributed as torch_dist
from mmengine.logging import print_log

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
