"""Detect objects in one image and draw the predictions.

Example (files of the README's demo, command 1)::

    python tools/image_demo.py data/fcos_demo/val/000001.png \
        configs/fcos/fcos_r18_fpn_gn-head_demo.py \
        work_dirs/fcos_r18_fpn_gn-head_demo/epoch_40.pth --out-file result.png
    # the same with the network in onnxruntime (.onnx file of tools/deployment/pytorch2onnx.py)
    python tools/image_demo.py data/fcos_demo/val/000001.png \
        configs/fcos/fcos_r18_fpn_gn-head_demo.py fcos_demo.onnx --backend onnxruntime

``--slice-size H W`` (with ``--slice-overlap``, ``--slice-merge``, ``--slice-full-image``)
predicts a large image by overlapping tiles (docs/inference.md).
"""
import argparse
from collections.abc import Sequence
from pathlib import Path

import mmcv

from fcosdet.apis import inference_detector, init_detector
from fcosdet.deployment import BACKENDS
from fcosdet.utils.cli import run_cli, unit_interval
from fcosdet.utils.slice_cli import add_slice_args, slice_kwargs
from fcosdet.visualization import DetLocalVisualizer


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description='Run a detector on one image')
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (the .onnx file for onnxruntime)')
    parser.add_argument('--backend', choices=BACKENDS, default='pytorch',
                        help='run the network in PyTorch or in onnxruntime (CPU)')
    parser.add_argument('--out-file', default=None,
                        help='write the drawing here (PNG) instead of showing it')
    parser.add_argument('--device', default='cpu', help='device, e.g. cpu or cuda:0')
    parser.add_argument('--allow-partial-load', action='store_true',
                        help='load a checkpoint that does not fit the model partially')
    parser.add_argument('--score-thr', type=unit_interval('--score-thr'), default=0.3,
                        help='draw predictions with a score above this')
    add_slice_args(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Detect, then draw the predictions to ``--out-file`` or a window."""
    args = parse_args(argv)
    slicing = slice_kwargs(args)
    if not Path(args.img).is_file():
        raise FileNotFoundError(f'image file not found: {args.img}')
    model = init_detector(args.config, args.checkpoint, device=args.device,
                          backend=args.backend, allow_partial_load=args.allow_partial_load)
    result = inference_detector(model, args.img, **slicing)

    visualizer = DetLocalVisualizer.get_instance('image_demo')
    visualizer.dataset_meta = model.dataset_meta
    image = mmcv.imread(args.img, channel_order='rgb')
    visualizer.add_datasample('result', image, data_sample=result, draw_gt=False,
                              show=args.out_file is None, out_file=args.out_file,
                              pred_score_thr=args.score_thr)
    if args.out_file is not None:
        print(f'Result written to {args.out_file}')


if __name__ == '__main__':
    run_cli(main)
