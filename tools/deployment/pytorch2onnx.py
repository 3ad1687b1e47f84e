"""Export a detector to ONNX: end to end (default) or the raw network (``--raw``).

Example::

    # resized image batch in, final detections out; standard ONNX ops only
    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out model.onnx --verify
    # the network only (FCOS), post-processing left to PyTorch
    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out raw.onnx --raw
    python tools/test.py CONFIG raw.onnx --backend onnxruntime   # evaluate it
    # int8 (QDQ) raw network, activation ranges calibrated on 32 training images
    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out int8.onnx --raw \
        --int8 --calib-images 32 --calib-split train

The end-to-end graph takes ``images [N, 3, H, W]`` (resized raw pixels, padded at the bottom /
right) and ``img_shapes [N, 2]`` and returns ``dets [N, P, 4]``, ``scores [N, P]``,
``labels [N, P]`` and ``num_dets [N]`` (P = ``test_cfg.max_per_img``); the raw graph takes the
preprocessed batch ``input`` and returns the head maps. N, H and W are dynamic unless
``--static`` fixes them to ``--batch-size`` and ``--shape``.
"""
import argparse
import os
import tempfile
from collections.abc import Sequence

import numpy as np
import torch
from mmengine.config import DictAction

from fcosdet.apis import init_detector, init_ort_detector
from fcosdet.deployment import export_onnx, require
from fcosdet.deployment.end2end_check import compare_rows, pytorch_detections
from fcosdet.deployment.end2end_export import export_end2end
from fcosdet.deployment.onnx_export import MIN_OPSET
from fcosdet.deployment.onnx_quantize import calibration_inputs, quantize_onnx
from fcosdet.utils.cli import CLIError, check_checkpoint, run_cli


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Export a detector to ONNX')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', required=True, help='output .onnx file')
    parser.add_argument('--raw', action='store_true',
                        help='export the network only (FCOS: the raw head maps), not end to end')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1216], metavar=('H', 'W'),
                        help='input height and width used for tracing (multiples of 32)')
    parser.add_argument('--batch-size', type=int, default=1, help='batch size for tracing')
    shape_mode = parser.add_mutually_exclusive_group()
    shape_mode.add_argument('--static', action='store_true',
                            help='fix batch size, height and width to --batch-size and --shape')
    shape_mode.add_argument('--dynamic', action='store_true',
                            help='dynamic batch size, height and width (the default)')
    parser.add_argument('--opset', type=int, default=MIN_OPSET, help='ONNX opset (>= 17)')
    parser.add_argument('--int8', action='store_true',
                        help='write a static int8 (QDQ) network, calibrated on dataset images')
    parser.add_argument('--calib-images', type=int, default=32,
                        help='number of images for the int8 calibration')
    parser.add_argument('--calib-split', choices=('test', 'train'), default='test',
                        help="calibration images: the config's test_dataloader dataset, or its "
                             'train_dataloader dataset read with the test pipeline')
    parser.add_argument('--verify', action='store_true',
                        help='run the file in onnxruntime and print the largest difference '
                             'from PyTorch on a random input')
    parser.add_argument('--seed', type=int, default=0, help='seed of the --verify input')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config values')
    return parser.parse_args(argv)


def max_difference(model: torch.nn.Module, onnx_file: str, config: str,
                   cfg_options: dict | None, shape: tuple[int, int], batch_size: int) -> float:
    """Largest absolute difference of the raw head outputs of PyTorch and onnxruntime."""
    inputs = torch.randn(batch_size, 3, *shape)
    with torch.no_grad():
        expected = [t for maps in model(inputs) for t in maps]
    ort_model = init_ort_detector(config, onnx_file, cfg_options=cfg_options)
    actual = [t for maps in ort_model(inputs, mode='tensor') for t in maps]
    return max(float(np.abs(a.numpy() - e.numpy()).max()) for a, e in zip(actual, expected))


def _export_int8(model: torch.nn.Module, args: argparse.Namespace,
                 shape: tuple[int, int]) -> None:
    """Export fp32 to a temporary file, then quantize it into ``args.out``."""
    calib = calibration_inputs(model.cfg, model.data_preprocessor, args.calib_images,
                               args.calib_split, shape if args.static else None)
    with tempfile.TemporaryDirectory() as tmp:
        fp32_file = export_onnx(model, os.path.join(tmp, 'fp32.onnx'), shape=shape,
                                batch_size=args.batch_size, dynamic=not args.static,
                                opset=args.opset)
        stats = quantize_onnx(fp32_file, args.out, calib)
    print(f"int8: {stats['quantized_convs']} convs quantized, {stats['fp32_convs']} prediction "
          f"convs kept fp32, activation ranges from {stats['calib_batches']} "
          f'{args.calib_split} images')


def verify_end2end(model: torch.nn.Module, onnx_file: str, shape: tuple[int, int],
                   batch_size: int, seed: int) -> dict:
    """Run the end-to-end file and ``model.predict`` on random images of ``shape`` (the second
    and later ones smaller, padded) and compare their detections row by row."""
    ort = require('onnxruntime')
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch_size, 3, *shape)).astype(np.float32)
    img_shapes = np.array([[shape[0] - 8 * (i > 0), shape[1] - 12 * (i > 0)]
                           for i in range(batch_size)], np.float32)
    session = ort.InferenceSession(onnx_file, providers=['CPUExecutionProvider'])
    outputs = session.run(None, {'images': images, 'img_shapes': img_shapes})
    return compare_rows(pytorch_detections(model, images, img_shapes), *outputs)


def _check_args(args: argparse.Namespace) -> None:
    """Raise a CLIError naming the first bad argument."""
    check_checkpoint(args.checkpoint)
    if min(args.shape) <= 0 or args.batch_size <= 0:
        raise CLIError(f'--shape and --batch-size must be positive, got {args.shape} '
                       f'{args.batch_size}')
    if not args.out.endswith('.onnx'):
        raise CLIError(f'--out must be a .onnx file, got {args.out}')
    if args.int8 and args.calib_images <= 0:
        raise CLIError(f'--calib-images must be positive, got {args.calib_images}')
    if args.int8 and args.batch_size != 1 and args.static:
        raise CLIError('--int8 calibrates on single images: use --batch-size 1 without --static')
    if args.int8 and not args.raw:
        raise CLIError('--int8 of the end-to-end file is not available yet: add --raw')


def _export(model: torch.nn.Module, args: argparse.Namespace, shape: tuple[int, int]) -> None:
    """Write ``args.out`` as the options say."""
    if args.int8:
        _export_int8(model, args, shape)
    elif args.raw:
        export_onnx(model, args.out, shape=shape, batch_size=args.batch_size,
                    dynamic=not args.static, opset=args.opset)
    else:
        export_end2end(model, args.out, shape=shape, batch_size=args.batch_size,
                       dynamic=not args.static, opset=args.opset)


def main(argv: Sequence[str] | None = None) -> None:
    """Load the model, export it and optionally verify the file."""
    args = parse_args(argv)
    _check_args(args)
    model = init_detector(args.config, args.checkpoint, cfg_options=args.cfg_options,
                          fast_path=False)
    shape = (args.shape[0], args.shape[1])
    try:
        _export(model, args, shape)
    except (ValueError, ImportError, KeyError, FileNotFoundError) as err:
        raise CLIError(str(err)) from err
    kind = 'raw network' if args.raw else 'end to end'
    print(f'exported {args.config} ({kind}) to {args.out} (traced [{args.batch_size}, 3, '
          f'{shape[0]}, {shape[1]}]{"" if args.static else ", dynamic N/H/W"}, '
          f'opset {args.opset}{", int8" if args.int8 else ""})')
    if args.verify and args.raw:
        diff = max_difference(model, args.out, args.config, args.cfg_options, shape,
                              args.batch_size)
        print(f'max |onnxruntime - pytorch| of the raw head outputs: {diff:.3g}')
    elif args.verify:
        res = verify_end2end(model, args.out, shape, max(args.batch_size, 2) if not args.static
                             else args.batch_size, args.seed)
        print(f"detections: pytorch {res['num_pytorch']}, onnxruntime {res['num_onnx']}, "
              f"labels equal {res['labels_equal']}; max |onnxruntime - pytorch|: boxes "
              f"{res['max_box_diff']:.3g}, scores {res['max_score_diff']:.3g}")


if __name__ == '__main__':
    run_cli(main)
