"""Export a detector to ONNX: end to end (default) or the raw network (``--raw``).

Example::

    # resized image batch in, final detections out; standard ONNX ops only
    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out model.onnx --verify
    # the network only (FCOS), post-processing left to PyTorch
    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out raw.onnx --raw
    python tools/test.py CONFIG raw.onnx --backend onnxruntime   # evaluate it
    # int8 (QDQ) end to end, activation ranges calibrated on 32 training images; fp16
    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out int8.onnx \
        --int8 --calib-images 32 --calib-split train
    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out fp16.onnx --fp16

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
from fcosdet.deployment import export_onnx, onnx_quantize, require
from fcosdet.deployment.end2end_check import match_detections, pytorch_detections
from fcosdet.deployment.end2end_export import export_end2end
from fcosdet.deployment.onnx_export import MIN_OPSET
from fcosdet.utils.cli import CLIError, check_checkpoint, run_cli
from fcosdet.utils.durable_files import write_durably


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
    parser.add_argument('--slim', action='store_true',
                        help='simplify the end-to-end graph with onnxslim (pip install onnxslim): '
                             'fewer nodes and a faster session start, same outputs')
    parser.add_argument('--int8', action='store_true',
                        help='write a static int8 (QDQ) file, calibrated on dataset images')
    parser.add_argument('--fp16', action='store_true',
                        help='write the end-to-end file with the network in fp16 (inputs, '
                             'outputs and the decoding / NMS tail stay float32)')
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
    """Export the fp32 network to a temporary file, then quantize it into ``args.out``."""
    calib = onnx_quantize.calibration_inputs(model.cfg, model.data_preprocessor,
                                             args.calib_images, args.calib_split,
                                             shape if args.static else None)
    with tempfile.TemporaryDirectory() as tmp:
        fp32_file = export_onnx(model, os.path.join(tmp, 'fp32.onnx'), shape=shape,
                                batch_size=args.batch_size, dynamic=not args.static,
                                opset=args.opset)
        stats = onnx_quantize.quantize_onnx(fp32_file, args.out, calib)
    print(f"int8: {stats['quantized_convs']} convs quantized, {stats['fp32_convs']} prediction "
          f"convs kept fp32, activation ranges from {stats['calib_batches']} "
          f'{args.calib_split} images')


def _quantize_function(name: str) -> object:
    """``onnx_quantize.<name>``, the end-to-end int8 / fp16 conversion."""
    function = getattr(onnx_quantize, name, None)
    if function is None:
        raise CLIError(f'fcosdet.deployment.onnx_quantize has no {name}: this checkout cannot '
                       'write an int8 / fp16 end-to-end file (use --raw for an int8 network)')
    return function


def _export_end2end_converted(model: torch.nn.Module, args: argparse.Namespace,
                              shape: tuple[int, int]) -> None:
    """Export the fp32 end-to-end file to a temporary file, then write its int8 (calibrated on
    dataset images, resized and padded as the runtime does) or fp16 version into ``args.out``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        fp32_file = export_end2end(model, os.path.join(tmp, 'fp32.onnx'), shape=shape,
                                   batch_size=args.batch_size, dynamic=not args.static,
                                   opset=args.opset, slim=args.slim)
        if args.fp16:
            stats = _quantize_function('convert_end2end_fp16')(fp32_file, args.out)
            print(f"fp16: {stats['fp16_nodes']} nodes in fp16, {stats['fp32_nodes']} tail "
                  'nodes kept float32')
            return
        calib = _quantize_function('calibration_images')(model.cfg, args.calib_images,
                                                         args.calib_split)
        stats = _quantize_function('quantize_end2end')(fp32_file, args.out, calib)
    print(f"int8: {stats['quantized_nodes']} convs quantized, {stats['tail_nodes']} tail nodes "
          f"and {len(stats['sensitive'])} sensitive nodes kept float, ranges from "
          f"{stats['calib_images']} {args.calib_split} images")


def verify_end2end(model: torch.nn.Module, onnx_file: str, shape: tuple[int, int],
                   batch_size: int, seed: int) -> dict:
    """Run the end-to-end file and ``model.predict`` on random images of ``shape`` (the second
    and later ones smaller, padded) and match their detections (:func:`match_detections`)."""
    ort = require('onnxruntime')
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch_size, 3, *shape)).astype(np.float32)
    img_shapes = np.array([[shape[0] - 8 * (i > 0), shape[1] - 12 * (i > 0)]
                           for i in range(batch_size)], np.float32)
    session = ort.InferenceSession(onnx_file, providers=['CPUExecutionProvider'])
    outputs = session.run(None, {'images': images, 'img_shapes': img_shapes})
    return match_detections(pytorch_detections(model, images, img_shapes), *outputs)


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
    if args.int8 and args.fp16:
        raise CLIError('--int8 and --fp16 exclude each other')
    if args.raw and (args.fp16 or args.slim):
        raise CLIError(f"{'--fp16' if args.fp16 else '--slim'} applies to the end-to-end file: "
                       'drop --raw')
    if args.int8 and args.static and (args.batch_size != 1 or not args.raw):
        raise CLIError('--int8 calibrates on single images of their own size: drop --static '
                       '(or use --raw --static --batch-size 1)')


def _export(model: torch.nn.Module, args: argparse.Namespace, shape: tuple[int, int]) -> None:
    """Write ``args.out`` as the options say."""
    if args.int8 and args.raw:
        _export_int8(model, args, shape)
    elif args.int8 or args.fp16:
        _export_end2end_converted(model, args, shape)
    elif args.raw:
        export_onnx(model, args.out, shape=shape, batch_size=args.batch_size,
                    dynamic=not args.static, opset=args.opset)
    else:
        export_end2end(model, args.out, shape=shape, batch_size=args.batch_size,
                       dynamic=not args.static, opset=args.opset, slim=args.slim)


def main(argv: Sequence[str] | None = None) -> None:
    """Load the model, export it and optionally verify the file."""
    args = parse_args(argv)
    _check_args(args)
    model = init_detector(args.config, args.checkpoint, cfg_options=args.cfg_options,
                          fast_path=False)
    shape = (args.shape[0], args.shape[1])
    def write(tmp: str) -> None:
        _export(model, argparse.Namespace(**{**vars(args), 'out': tmp}), shape)

    try:  # a hidden temporary file renamed over --out: a kill never leaves a half-written file
        write_durably(args.out, write)
    except (ValueError, ImportError, KeyError, FileNotFoundError) as err:
        raise CLIError(str(err)) from err
    kind = 'raw network' if args.raw else 'end to end'
    print(f'exported {args.config} ({kind}) to {args.out} (traced [{args.batch_size}, 3, '
          f'{shape[0]}, {shape[1]}]{"" if args.static else ", dynamic N/H/W"}, '
          f'opset {args.opset}{", int8" if args.int8 else ""}{", fp16" if args.fp16 else ""})')
    if args.verify and args.raw:
        diff = max_difference(model, args.out, args.config, args.cfg_options, shape,
                              args.batch_size)
        print(f'max |onnxruntime - pytorch| of the raw head outputs: {diff:.3g}')
    elif args.verify:
        res = verify_end2end(model, args.out, shape, max(args.batch_size, 2) if not args.static
                             else args.batch_size, args.seed)
        print(f"detections: pytorch {res['num_pytorch']}, onnxruntime {res['num_onnx']}, "
              f"matched {res['matched']} (same label, IoU >= 0.98 or corners within 1e-3, score "
              f"within 2e-3); max "
              f"|onnxruntime - pytorch| of the matched: boxes {res['max_box_diff']:.3g}, scores "
              f"{res['max_score_diff']:.3g}")


if __name__ == '__main__':
    run_cli(main)
