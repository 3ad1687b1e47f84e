"""Time a detector end to end (BGR image in, detections out): PyTorch vs onnxruntime.

Exports the model end to end (fp32, and int8 / fp16 copies), then times, on the same image and
thread count: PyTorch eager and PyTorch's default fast path (``inference_detector``: test
pipeline, preprocessing, network, post-processing) against ``fcosdet_runtime.Detector`` on the
fp32 / int8 / fp16 files (resize, padding, graph, rescale). Random weights are fine for
latency. Example (the issue's R-50 figure)::

    R50=configs/fcos/fcos_r50_fpn_gn-head-center-normbbox-centeronreg-giou_8xb8-amp-lsj-200e_coco.py
    python tools/deployment/benchmark_ort.py $R50 \
        --shape 800 1216 --threads 2 --int8 --work-dir work_dirs/bench_ort --json bench.json

The image is a generated demo scene of ``--shape`` (H, W); the int8 file is calibrated on
``--calib-images`` other generated scenes (use ``pytorch2onnx.py --int8`` with dataset images
for accuracy).
"""
import argparse
import importlib.util
import json
import os.path as osp
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from mmengine.config import DictAction

from fcosdet.apis import inference_detector, init_detector
from fcosdet.datasets.demo_dataset import render_demo_image
from fcosdet.deployment import export_end2end, require
from fcosdet.deployment.onnx_quantize import convert_end2end_fp16, quantize_end2end
from fcosdet.models.utils import DEFAULT_FAST_PATH, apply_fast_path
from fcosdet.utils.cli import CLIError, check_checkpoint, load_config, run_cli


def _load_benchmark() -> object:
    """``tools/analysis_tools/benchmark.py`` (its timing and report helpers)."""
    path = Path(__file__).resolve().parents[1] / 'analysis_tools' / 'benchmark.py'
    spec = importlib.util.spec_from_file_location('fcosdet_benchmark', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description='End-to-end latency: PyTorch vs onnxruntime')
    parser.add_argument('config', help='config file')
    parser.add_argument('--checkpoint', help='checkpoint (default: random weights)')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1216], metavar=('H', 'W'),
                        help='size of the test image (it is resized by the test pipeline)')
    parser.add_argument('--threads', type=int, default=2, help='torch / onnxruntime threads')
    parser.add_argument('--repeat', type=int, default=5, help='timed runs per variant')
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs per variant')
    parser.add_argument('--int8', action='store_true', help='also time an int8 copy')
    parser.add_argument('--fp16', action='store_true', help='also time an fp16 copy')
    parser.add_argument('--calib-images', type=int, default=4, help='int8 calibration images')
    parser.add_argument('--min-sqnr-db', type=float, default=None,
                        help='int8: keep float the nodes whose input SQNR is below this')
    parser.add_argument('--work-dir', default='work_dirs/benchmark_ort',
                        help='folder of the exported files')
    parser.add_argument('--json', help='write the figures to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config values')
    args = parser.parse_args(argv)
    if min(args.repeat, args.threads, args.calib_images, *args.shape) < 1 or args.warmup < 0:
        raise CLIError('--repeat, --threads, --calib-images and --shape must be positive, '
                       '--warmup not negative')
    return args


def demo_image(index: int, shape: tuple[int, int]) -> np.ndarray:
    """A generated demo scene, BGR ``uint8 [H, W, 3]``."""
    return np.ascontiguousarray(render_demo_image(0, 1, index, *shape)[0][..., ::-1])


def export_files(model: torch.nn.Module, args: argparse.Namespace) -> dict[str, str]:
    """The fp32 end-to-end file and the requested int8 / fp16 copies, by variant name."""
    work_dir = Path(args.work_dir)
    files = dict(ort_fp32=export_end2end(model, str(work_dir / 'fp32.onnx'),
                                         shape=tuple(args.shape)))
    if args.int8:
        calib = [demo_image(i + 1, tuple(args.shape)) for i in range(args.calib_images)]
        stats = quantize_end2end(files['ort_fp32'], str(work_dir / 'int8.onnx'), calib,
                                 min_sqnr_db=args.min_sqnr_db)
        print(f"int8: {stats['quantized_nodes']} nodes quantized, "
              f"{len(stats['sensitive'])} sensitive kept float")
        files['ort_int8'] = str(work_dir / 'int8.onnx')
    if args.fp16:
        convert_end2end_fp16(files['ort_fp32'], str(work_dir / 'fp16.onnx'))
        files['ort_fp16'] = str(work_dir / 'fp16.onnx')
    return files


def run_benchmark(args: argparse.Namespace) -> dict:
    """Export, then time every variant on one image; figures and ratios to PyTorch eager."""
    runtime = require('fcosdet_runtime')
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.cfg_options)
    model = init_detector(cfg, args.checkpoint, fast_path=False)
    files = export_files(model, args)
    image = demo_image(0, tuple(args.shape))
    fast = init_detector(cfg, args.checkpoint, fast_path=False)
    apply_fast_path(fast, DEFAULT_FAST_PATH)
    variants = {'pytorch_eager': lambda: inference_detector(model, image),
                'pytorch_default': lambda: inference_detector(fast, image)}
    detectors = {name: runtime.Detector(path, num_threads=args.threads)
                 for name, path in files.items()}
    variants.update({name: (lambda d=d: d(image)) for name, d in detectors.items()})
    figures = {}
    with torch.no_grad():
        for name, fn in variants.items():
            figures[name] = bench.summarize(bench.time_runs(fn, args.warmup, args.repeat), 1)
    eager = figures['pytorch_eager']['median_s']
    figures['ratio_to_eager'] = {name: fig['median_s'] / eager for name, fig in figures.items()
                                 if name != 'pytorch_eager'}
    figures['detections'] = {name: int(len(d(image)['scores'])) for name, d in detectors.items()}
    machine = dict(bench.machine_info(args.threads), onnxruntime=require('onnxruntime').__version__)
    return dict(task='end2end', config=args.config, shape=list(args.shape),
                weights=args.checkpoint or 'random', machine=machine, figures=figures)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse, benchmark, print (and write) the figures."""
    args = parse_args(argv)
    if args.checkpoint is not None:
        check_checkpoint(args.checkpoint)
    if not osp.isfile(args.config):
        raise CLIError(f'config file not found: {args.config}')
    result = run_benchmark(args)
    print(bench.format_report(result))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    run_cli(main)
