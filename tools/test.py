"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [options]``."""
import argparse
import os
import os.path as osp
from collections.abc import Sequence

from mmengine.config import Config, DictAction

from fcosdet.engine.dist import LAUNCHERS
from fcosdet.utils.cli import (
    CLIError,
    build_runner,
    check_checkpoint,
    load_config,
    run_cli,
    work_dir_of,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='folder for the evaluation logs')
    parser.add_argument('--out', help='dump the predictions to this .pkl file')
    parser.add_argument('--show', action='store_true', help='show each drawn prediction')
    parser.add_argument('--show-dir', help='draw the predictions into this folder (relative to '
                                           '<work dir>/<timestamp>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config values; the parent of every key must exist')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def _enable_drawing(cfg: Config, show: bool, show_dir: str | None) -> None:
    """Turn on the ``visualization`` default hook (DetVisualizationHook) for drawing."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise CLIError('--show/--show-dir need default_hooks.visualization '
                       '(DetVisualizationHook) in the config')
    hook.draw = True
    if show:
        hook.show = True
        hook.wait_time = 2
    if show_dir is not None:
        hook.test_out_dir = show_dir


def _add_dump(cfg: Config, out: str) -> None:
    """Append a metric that dumps every prediction to ``out`` (a pickle)."""
    if not out.endswith(('.pkl', '.pickle')):
        raise CLIError(f'--out must be a .pkl or .pickle file, got {out}')
    dump = dict(type='DumpResults', out_file_path=osp.abspath(out))
    evaluator = cfg.test_evaluator
    cfg.test_evaluator = [*evaluator, dump] if isinstance(evaluator, list) else [evaluator, dump]


def build_cfg(args: argparse.Namespace) -> Config:
    """The test config: the file, ``--cfg-options`` and the other flags merged."""
    check_checkpoint(args.checkpoint)
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = work_dir_of(args.work_dir, cfg, args.config)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show or args.show_dir:
        _enable_drawing(cfg, args.show, args.show_dir)
    if args.out:
        _add_dump(cfg, args.out)
    return cfg


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, build the runner and test."""
    build_runner(build_cfg(parse_args(argv))).test()


if __name__ == '__main__':
    run_cli(main)
