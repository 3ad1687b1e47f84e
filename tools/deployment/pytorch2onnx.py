"""Export a detector's backbone + neck + head to ONNX.

Example::

    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out model.onnx --dynamic
    python tools/test.py CONFIG model.onnx --backend onnxruntime   # evaluate it
    # int8 (QDQ) network, activation ranges calibrated on 32 training images
    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out int8.onnx --dynamic \
        --int8 --calib-images 32 --calib-split train

The graph takes the preprocessed batch ``input [N, 3, H, W]`` and returns the raw head maps
(``cls_score_l``, ``bbox_pred_l``, ``centerness_l``); post-processing stays in PyTorch.
Without ``--dynamic`` N, H and W are fixed to ``--batch-size`` and ``--shape``.
"""
import argparse
import os
import tempfile
from collections.abc import Sequence

import numpy as np
import torch
from mmengine.config import DictAction

from fcosdet.apis import init_detector, init_ort_detector
from fcosdet.deployment import export_onnx
from fcosdet.deployment.onnx_export import MIN_OPSET
from fcosdet.deployment.onnx_quantize import calibration_inputs, quantize_onnx
from fcosdet.utils.cli import CLIError, check_checkpoint, run_cli


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Export a detector to ONNX')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', required=True, help='output .onnx file')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1216], metavar=('H', 'W'),
                        help='input height and width used for tracing (multiples of 32)')
    parser.add_argument('--batch-size', type=int, default=1, help='batch size for tracing')
    parser.add_argument('--dynamic', action='store_true',
                        help='make batch size, height and width dynamic axes')
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
                               args.calib_split, None if args.dynamic else shape)
    with tempfile.TemporaryDirectory() as tmp:
        fp32_file = export_onnx(model, os.path.join(tmp, 'fp32.onnx'), shape=shape,
                                batch_size=args.batch_size, dynamic=args.dynamic,
                                opset=args.opset)
        stats = quantize_onnx(fp32_file, args.out, calib)
    print(f"int8: {stats['quantized_convs']} convs quantized, {stats['fp32_convs']} prediction "
          f"convs kept fp32, activation ranges from {stats['calib_batches']} "
          f'{args.calib_split} images')


def main(argv: Sequence[str] | None = None) -> None:
    """Load the model, export it and optionally verify the file."""
    args = parse_args(argv)
    check_checkpoint(args.checkpoint)
    if min(args.shape) <= 0 or args.batch_size <= 0:
        raise CLIError(f'--shape and --batch-size must be positive, got {args.shape} '
                       f'{args.batch_size}')
    if not args.out.endswith('.onnx'):
        raise CLIError(f'--out must be a .onnx file, got {args.out}')
    if args.int8 and args.calib_images <= 0:
        raise CLIError(f'--calib-images must be positive, got {args.calib_images}')
    if args.int8 and args.batch_size != 1 and not args.dynamic:
        raise CLIError('--int8 calibrates on single images: use --batch-size 1 or --dynamic')
    model = init_detector(args.config, args.checkpoint, cfg_options=args.cfg_options)
    shape = (args.shape[0], args.shape[1])
    try:
        if args.int8:
            _export_int8(model, args, shape)
        else:
            export_onnx(model, args.out, shape=shape, batch_size=args.batch_size,
                        dynamic=args.dynamic, opset=args.opset)
    except (ValueError, ImportError, KeyError, FileNotFoundError) as err:
        raise CLIError(str(err)) from err
    print(f'exported {args.config} to {args.out} (input [{args.batch_size}, 3, {shape[0]}, '
          f'{shape[1]}]{", dynamic N/H/W" if args.dynamic else ""}, opset {args.opset}'
          f'{", int8" if args.int8 else ""})')
    if args.verify:
        diff = max_difference(model, args.out, args.config, args.cfg_options, shape,
                              args.batch_size)
        print(f'max |onnxruntime - pytorch| of the raw head outputs: {diff:.3g}')


if __name__ == '__main__':
    run_cli(main)
