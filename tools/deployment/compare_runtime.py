"""Do the torch-free runtime's detections equal PyTorch's? The issue's exactness rule on images.

    python tools/deployment/compare_runtime.py CONFIG CHECKPOINT model.onnx data/fcos_demo/val/

For every image, ``inference_detector`` (PyTorch, default path) and ``fcosdet_runtime.Detector``
(the end-to-end file) run on the same BGR array. Every PyTorch detection with a score of at
least ``--score-thr`` must be matched by a runtime detection of the same label with IoU >=
``--min-iou`` and a score within ``--score-tol``; runtime detections above the threshold that
match none are extras (at most 2 % allowed). Prints the counts and ``EXACT`` or ``NOT EXACT``.
"""
import argparse
import json
from collections.abc import Sequence

import mmcv
import numpy as np

from fcosdet.apis import inference_detector, init_detector
from fcosdet.apis.det_inferencer import list_images
from fcosdet.deployment import require
from fcosdet.deployment.end2end_check import match_detections
from fcosdet.utils.cli import CLIError, check_checkpoint, run_cli

MAX_EXTRA = 0.02


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description="Compare the runtime's detections to PyTorch's")
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('onnx', help='end-to-end .onnx file of the same checkpoint')
    parser.add_argument('inputs', nargs='+', help='image files, folders or glob patterns')
    parser.add_argument('--score-thr', type=float, default=0.1, help='detections compared')
    parser.add_argument('--min-iou', type=float, default=0.98, help='IoU of a match')
    parser.add_argument('--score-tol', type=float, default=2e-3, help='score gap of a match')
    parser.add_argument('--json', help='write the counts to this JSON file')
    return parser.parse_args(argv)


def _above(result: dict[str, np.ndarray], thr: float) -> dict[str, np.ndarray]:
    keep = result['scores'] >= thr
    return {key: value[keep] for key, value in result.items()}


def compare(model: object, detector: object, images: list[str], args: argparse.Namespace) -> dict:
    """Counts of the exactness rule over ``images``."""
    totals = dict(images=len(images), pytorch=0, runtime=0, matched=0, max_box_diff=0.0,
                  max_score_diff=0.0)
    for path in images:
        img = mmcv.imread(path, channel_order='bgr')
        pred = inference_detector(model, img).pred_instances
        expected = _above(dict(bboxes=pred.bboxes.numpy(), scores=pred.scores.numpy(),
                               labels=pred.labels.numpy()), args.score_thr)
        got = detector(img)
        # the runtime side: every detection that could match (a margin below the threshold)
        got = _above(got, args.score_thr - args.score_tol)
        counts = match_detections([expected], got['bboxes'][None], got['scores'][None],
                                  got['labels'][None], np.array([len(got['scores'])]),
                                  args.min_iou, args.score_tol)
        totals['pytorch'] += counts['num_pytorch']
        totals['runtime'] += int((got['scores'] >= args.score_thr).sum())
        totals['matched'] += counts['matched']
        totals['max_box_diff'] = max(totals['max_box_diff'], counts['max_box_diff'])
        totals['max_score_diff'] = max(totals['max_score_diff'], counts['max_score_diff'])
    totals['extra'] = max(totals['runtime'] - totals['matched'], 0)
    totals['exact'] = (totals['matched'] == totals['pytorch'] and
                       totals['extra'] <= MAX_EXTRA * max(totals['pytorch'], 1))
    return totals


def main(argv: Sequence[str] | None = None) -> None:
    """Run both on every image and print the verdict."""
    args = parse_args(argv)
    check_checkpoint(args.checkpoint)
    try:
        images = list_images(args.inputs)
        detector = require('fcosdet_runtime').Detector(args.onnx)
    except (FileNotFoundError, ValueError) as err:
        raise CLIError(err.args[0]) from err
    model = init_detector(args.config, args.checkpoint)
    totals = compare(model, detector, images, args)
    print(f"{totals['images']} images: {totals['matched']} of {totals['pytorch']} PyTorch "
          f"detections (score >= {args.score_thr}) matched, {totals['extra']} extra; max box "
          f"diff {totals['max_box_diff']:.4f} px, max score diff {totals['max_score_diff']:.2e}"
          f": {'EXACT' if totals['exact'] else 'NOT EXACT'}")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(totals, f, indent=2)


if __name__ == '__main__':
    run_cli(main)
