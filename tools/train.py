"""Train a detector: ``python tools/train.py CONFIG [options]``.

Settings are taken from the command line first, then the config, then the defaults
(e.g. the work dir is ``--work-dir``, else the config's ``work_dir``, else
``work_dirs/<config name>``).
"""
import argparse
import os
import sys
from collections.abc import Sequence

import torch
from mmengine.config import Config, DictAction

from fcosdet.engine.dist import LAUNCHERS
from fcosdet.engine.hooks import NonFiniteLossError
from fcosdet.engine.optimizers import CPU_AMP_KEYS
from fcosdet.utils.cli import (
    CLIError,
    build_runner,
    check_checkpoint,
    load_config,
    run_cli,
    work_dir_of,
)
from fcosdet.utils.work_dir_lock import work_dir_lock


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file')
    parser.add_argument('--work-dir', help='folder for logs and checkpoints')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision for every config: float16 AMP on CUDA, bfloat16 '
                             'autocast on CPU (overrides optim_wrapper.dtype, no probe)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by (processes x batch size) / base_batch_size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint of the work dir '
                             'when no CKPT is given')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config values, e.g. train_cfg.max_epochs=2; the parent '
                             'of every key must exist in the config')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def _enable_amp(cfg: Config) -> None:
    """Switch the optimizer wrapper to the device's mixed precision, whatever the config says:
    CUDA: mmengine's ``AmpOptimWrapper`` (float16, dynamic loss scaling); CPU:
    ``CPUAmpOptimWrapper(dtype='bfloat16')`` (also for a ``dtype='auto'`` or ``'float32'``
    config: no probe)."""
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper == 'AmpOptimWrapper':
        return
    if wrapper == 'CPUAmpOptimWrapper' and torch.cuda.is_available():  # a CPU config on a GPU
        for key in CPU_AMP_KEYS:
            cfg.optim_wrapper.pop(key, None)
        wrapper = 'OptimWrapper'
    if wrapper not in ('OptimWrapper', 'CPUAmpOptimWrapper'):
        raise CLIError(f'--amp: optim_wrapper.type is {wrapper!r}; only OptimWrapper and '
                       'CPUAmpOptimWrapper can be switched to mixed precision')
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    else:
        cfg.optim_wrapper.type = 'CPUAmpOptimWrapper'
        cfg.optim_wrapper.dtype = 'bfloat16'


def _set_resume(cfg: Config, resume: str | None) -> None:
    """Apply ``--resume``: ``'auto'`` finds the latest checkpoint of the work dir."""
    if resume is None:
        return
    cfg.resume = True
    if resume == 'auto':
        cfg.load_from = None
    else:
        check_checkpoint(resume)
        cfg.load_from = resume


def build_cfg(args: argparse.Namespace) -> Config:
    """The training config: the file, ``--cfg-options`` and the other flags merged."""
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = work_dir_of(args.work_dir, cfg, args.config)
    if args.amp:
        _enable_amp(cfg)
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise CLIError(f'--auto-scale-lr: the config {args.config} has no '
                           'auto_scale_lr.base_batch_size')
        cfg.auto_scale_lr.enable = True
    _set_resume(cfg, args.resume)
    return cfg


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, build the runner and train."""
    cfg = build_cfg(parse_args(argv))
    # one run per work dir; the processes of a distributed run share it, rank 0 holds the lock
    rank = os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0'))
    with work_dir_lock(cfg.work_dir, enabled=rank == '0' and '://' not in cfg.work_dir) as note:
        if note:
            print(f'train.py: warning: {note}', file=sys.stderr)
        build_runner(cfg).train()


if __name__ == '__main__':
    run_cli(main, expected=(NonFiniteLossError,))
