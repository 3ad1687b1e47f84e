"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [options]``.

``--backend onnxruntime`` evaluates the ``.onnx`` file of ``tools/deployment/pytorch2onnx.py``
(given as CHECKPOINT) instead; ``--fast-path fuse_bn channels_last [bf16]`` (or the config key
``fast_path``) switches the PyTorch model to the inference fast paths after loading the weights.
"""
import argparse
import os
import os.path as osp
import warnings
from collections.abc import Sequence

from mmengine.config import Config, DictAction

from fcosdet.deployment import BACKENDS, check_backend, ort_model_cfg
from fcosdet.engine.dist import LAUNCHERS
from fcosdet.models.utils import FAST_PATH_KEYS, parse_fast_path
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
    parser.add_argument('checkpoint', help='checkpoint file (the .onnx file for onnxruntime)')
    parser.add_argument('--backend', choices=BACKENDS, default='pytorch',
                        help='run the network in PyTorch or in onnxruntime (CPU)')
    parser.add_argument('--fast-path', nargs='*', choices=FAST_PATH_KEYS, default=None,
                        help="PyTorch inference fast paths (none given: all off); default: the "
                             "config's `fast_path` key")
    parser.add_argument('--allow-partial-load', action='store_true',
                        help='load a checkpoint that does not fit the model (other num_classes, '
                             'missing tensors): only the matching tensors, with a warning')
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


def _set_backend(cfg: Config, args: argparse.Namespace) -> None:
    """Set up the model for ``--backend`` (and ``--fast-path``).

    onnxruntime: an ``ORTDetector`` runs the .onnx file and nothing is loaded. pytorch: the
    checkpoint is loaded and, when a fast path is selected (the flag, else the config key
    ``fast_path``), a ``FastPathHook`` applies it at the start of the test epoch.

    Raises:
        CLIError: A checkpoint that does not suit the backend, a bad fast-path name or value,
            or ``--fast-path`` with onnxruntime.
    """
    try:
        check_backend(args.backend, args.checkpoint)
        fast_path = parse_fast_path(
            args.fast_path if args.fast_path is not None else cfg.get('fast_path'))
    except (ValueError, KeyError, TypeError) as err:
        raise CLIError(err.args[0]) from err
    if args.backend == 'onnxruntime':
        if args.fast_path:
            raise CLIError('--fast-path applies to --backend pytorch only')
        if any(fast_path.values()):
            warnings.warn(f"the config's fast_path {dict(cfg.fast_path)} is ignored by "
                          '--backend onnxruntime')
        cfg.model = ort_model_cfg(cfg.model, args.checkpoint)
        cfg.load_from = None
        return
    cfg.load_from = args.checkpoint
    cfg.allow_partial_load = args.allow_partial_load  # DetRunner: strict shapes by default
    if any(fast_path.values()):
        hook = dict(type='FastPathHook', fast_path=fast_path)
        cfg.custom_hooks = [*cfg.get('custom_hooks', []), hook]


def build_cfg(args: argparse.Namespace) -> Config:
    """The test config: the file, ``--cfg-options`` and the other flags merged."""
    check_checkpoint(args.checkpoint)
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = work_dir_of(args.work_dir, cfg, args.config)
    _set_backend(cfg, args)
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
