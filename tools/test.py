"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [options]``.

``--backend onnxruntime`` evaluates the ``.onnx`` file of ``tools/deployment/pytorch2onnx.py``
(given as CHECKPOINT) instead: an end-to-end file runs whole in onnxruntime through the torch-free
``fcosdet_runtime`` (so the mAP is the runtime's), a ``--raw`` file runs the network only.
The PyTorch model runs the exact fp32 fast path (``fuse_bn channels_last``) by default;
``--fast-path NAMES`` (or the config key ``fast_path``) selects others, ``--no-fast-path``
evaluates the plain eager model.
``--tta`` tests with test-time augmentation: the config's ``tta_model`` (``DetTTAModel``) wraps
the model and ``tta_pipeline`` (a ``TestTimeAug``) replaces the test pipeline; without these
keys, horizontal flip at the test scale and NMS at IoU 0.5 are used.
``--slice-size H W`` evaluates sliced inference (large images, small objects): the config's model
is wrapped into ``SlicedDetModel``, the dataset loads whole images, and each tile goes through
the rest of the test pipeline (its ``Resize``); the metric compares the merged predictions with
the full-image annotations. It excludes ``--tta``.
"""
import argparse
import copy
import os
import os.path as osp
import warnings
from collections.abc import Sequence

from mmengine.config import Config, ConfigDict, DictAction

from fcosdet.deployment import BACKENDS, check_backend, ort_model_cfg
from fcosdet.engine.dist import LAUNCHERS
from fcosdet.models.test_time_augs.det_tta import DEFAULT_TTA_CFG
from fcosdet.models.test_time_augs.sliced_model import split_slicing_pipeline
from fcosdet.models.utils import DEFAULT_FAST_PATH, FAST_PATH_KEYS, parse_fast_path
from fcosdet.utils.cli import (
    CLIError,
    build_runner,
    check_checkpoint,
    load_config,
    run_cli,
    work_dir_of,
)
from fcosdet.utils.slice_cli import add_slice_args, slice_kwargs


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file')
    parser.add_argument('checkpoint', help='checkpoint file (the .onnx file for onnxruntime)')
    parser.add_argument('--backend', choices=BACKENDS, default='pytorch',
                        help='run the network in PyTorch or in onnxruntime (CPU)')
    parser.add_argument('--fast-path', nargs='*', choices=FAST_PATH_KEYS, default=None,
                        help="PyTorch inference fast paths (none given: all off); default: the "
                             "config's `fast_path` key, else fuse_bn channels_last")
    parser.add_argument('--no-fast-path', action='store_true',
                        help='evaluate the plain eager PyTorch model (no fast path)')
    parser.add_argument('--allow-partial-load', action='store_true',
                        help='load a checkpoint that does not fit the model (other num_classes, '
                             'missing tensors): only the matching tensors, with a warning')
    parser.add_argument('--work-dir', help='folder for the evaluation logs')
    parser.add_argument('--out', help='dump the predictions to this .pkl file')
    parser.add_argument('--show', action='store_true', help='show each drawn prediction')
    parser.add_argument('--show-dir', help='draw the predictions into this folder (relative to '
                                           '<work dir>/<timestamp>)')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation with the config's tta_model and "
                             'tta_pipeline (default: flip, NMS 0.5)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config values; the parent of every key must exist')
    add_slice_args(parser)
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
    dump = dict(type='DumpDetResults', out_file_path=osp.abspath(out))
    evaluator = cfg.test_evaluator
    cfg.test_evaluator = [*evaluator, dump] if isinstance(evaluator, list) else [evaluator, dump]


def _default_tta_pipeline(pipeline: list) -> list:
    """The test pipeline with each image seen as is and flipped horizontally.

    Annotations are loaded after the flip so that the drawn ground truth stays unflipped.
    """
    def is_step(step: dict, name: str) -> bool:
        step_type = step['type'] if isinstance(step['type'], str) else step['type'].__name__
        return step_type.endswith(name)

    pack = [s for s in pipeline if is_step(s, 'PackDetInputs')]
    if not pack:
        raise CLIError('--tta without a `tta_pipeline` needs PackDetInputs in the test pipeline')
    meta_keys = tuple(pack[0].get('meta_keys', ())) or None
    if meta_keys is not None:
        meta_keys += tuple(k for k in ('ori_shape', 'flip', 'flip_direction')
                           if k not in meta_keys)
    groups = [[dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)]]
    groups += [[copy.deepcopy(s)] for s in pipeline if is_step(s, 'LoadAnnotations')]
    groups.append([dict(type='PackDetInputs', **({} if meta_keys is None else
                                                 dict(meta_keys=meta_keys)))])
    steps = [copy.deepcopy(s) for s in pipeline
             if not is_step(s, 'LoadAnnotations') and not is_step(s, 'PackDetInputs')]
    return [*steps, dict(type='TestTimeAug', transforms=groups)]


def _set_tta(cfg: Config) -> None:
    """Wrap the model into ``cfg.tta_model`` and test with ``cfg.tta_pipeline``."""
    if 'tta_model' not in cfg:
        warnings.warn(f'--tta: no `tta_model` in the config; using DetTTAModel {DEFAULT_TTA_CFG}')
        cfg.tta_model = dict(type='DetTTAModel', tta_cfg=copy.deepcopy(DEFAULT_TTA_CFG))
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset:  # dataset wrappers
        dataset = dataset.dataset
    if 'tta_pipeline' not in cfg:
        warnings.warn('--tta: no `tta_pipeline` in the config; using the test pipeline with '
                      'horizontal flip')
        cfg.tta_pipeline = _default_tta_pipeline(dataset.pipeline)
    dataset.pipeline = cfg.tta_pipeline
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)


def _set_slicing(cfg: Config, slicing: dict) -> None:
    """Wrap the model into ``SlicedDetModel``; the dataset then loads whole images only.

    Raises:
        CLIError: A test pipeline with ``TestTimeAug`` or without ``PackDetInputs``.
    """
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset:  # dataset wrappers
        dataset = dataset.dataset
    try:
        dataset.pipeline, tile_pipeline = split_slicing_pipeline(dataset.pipeline)
    except ValueError as err:
        raise CLIError(f'--slice-size: {err}') from err
    slice_cfg = dict(slice_size=slicing['slice_size'], overlap=slicing['slice_overlap'],
                     merge=slicing['slice_merge'], full_image=slicing['slice_full_image'])
    cfg.model = ConfigDict(type='SlicedDetModel', module=cfg.model,
                           tile_pipeline=tile_pipeline, slice_cfg=slice_cfg)


def _set_backend(cfg: Config, args: argparse.Namespace) -> None:
    """Set up the model for ``--backend`` (and ``--fast-path``).

    onnxruntime: ``ort_model_cfg`` picks the model from the file's metadata (end-to-end:
    ``ORTEnd2EndDetector``, raw network: ``ORTDetector``) and nothing is loaded. pytorch: the
    checkpoint is loaded and, when a fast path is selected (the flag, else the config key
    ``fast_path``, else ``DEFAULT_FAST_PATH``; none with ``--no-fast-path``), a ``FastPathHook``
    applies it at the start of the test epoch.

    Raises:
        CLIError: A checkpoint that does not suit the backend, a bad fast-path name or value,
            or ``--fast-path`` with onnxruntime.
    """
    try:
        check_backend(args.backend, args.checkpoint)
        if args.no_fast_path and args.fast_path:
            raise ValueError('--no-fast-path and --fast-path NAMES exclude each other')
        spec = args.fast_path if args.fast_path is not None else cfg.get(
            'fast_path', DEFAULT_FAST_PATH)
        fast_path = parse_fast_path(None if args.no_fast_path else spec)
    except (ValueError, KeyError, TypeError) as err:
        raise CLIError(err.args[0]) from err
    if args.backend == 'onnxruntime':
        if args.fast_path:
            raise CLIError('--fast-path applies to --backend pytorch only')
        if any(parse_fast_path(cfg.get('fast_path')).values()):  # the key, not the default
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
    slicing = slice_kwargs(args)
    if slicing and args.tta:
        raise CLIError('--slice-size and --tta exclude each other (sliced inference already '
                       'merges several views of each image)')
    check_checkpoint(args.checkpoint)
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = work_dir_of(args.work_dir, cfg, args.config)
    _set_backend(cfg, args)
    if args.tta:
        _set_tta(cfg)
    if slicing:
        _set_slicing(cfg, slicing)
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
