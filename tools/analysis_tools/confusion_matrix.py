"""Confusion matrix of dumped detections, with a background row and column.

Example (predictions of ``tools/test.py CONFIG CHECKPOINT --out results.pkl``)::

    python tools/analysis_tools/confusion_matrix.py CONFIG results.pkl SAVE_DIR \
        --score-thr 0.3 --tp-iou-thr 0.5

Writes ``SAVE_DIR/confusion_matrix.png`` (row-normalised percentages) and prints the counts.
The ground truth comes from the config's ``test_dataloader.dataset``.
"""
import argparse
import os.path as osp
from collections.abc import Sequence

import mmcv
import torch
from mmengine.config import DictAction

from fcosdet.evaluation.functional import (
    ImageDets,
    calculate_confusion_matrix,
    format_confusion_matrix,
    normalize_rows,
    results_with_gt,
)
from fcosdet.models.layers import batched_nms
from fcosdet.utils.cli import CLIError, build_test_dataset, load_config, run_cli
from fcosdet.visualization.analysis_plots import plot_confusion_matrix


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Confusion matrix of detection results')
    parser.add_argument('config', help='test config file (its test dataset gives the gt)')
    parser.add_argument('prediction_path', help='results .pkl of tools/test.py --out')
    parser.add_argument('save_dir', help='folder of confusion_matrix.png')
    parser.add_argument('--show', action='store_true', help='also open the figure')
    parser.add_argument('--color-theme', default='plasma', help='matplotlib colormap')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detections below this score are left out')
    parser.add_argument('--tp-iou-thr', type=float, default=0.5,
                        help='IoU from which a detection overlaps a gt box')
    parser.add_argument('--nms-iou-thr', type=float, default=None,
                        help='apply per-class NMS with this IoU to the detections first')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config values, e.g. test_dataloader.dataset.data_root=x')
    args = parser.parse_args(argv)
    for name in ('score_thr', 'tp_iou_thr', 'nms_iou_thr'):
        value = getattr(args, name)
        if value is not None and not 0 <= value <= 1:
            raise CLIError(f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
    return args


def apply_nms(dets: ImageDets, iou_thr: float) -> ImageDets:
    """Keep the detections that survive per-class NMS at ``iou_thr``."""
    keep = batched_nms(torch.from_numpy(dets.bboxes), torch.from_numpy(dets.scores),
                       torch.from_numpy(dets.labels), iou_thr).numpy()
    return ImageDets(dets.bboxes[keep], dets.scores[keep], dets.labels[keep])


def main(argv: Sequence[str] | None = None) -> None:
    """Count, print and draw the confusion matrix."""
    args = parse_args(argv)
    dataset = build_test_dataset(load_config(args.config, args.cfg_options))
    classes = list(dataset.metainfo['classes'])
    try:
        pairs = results_with_gt(args.prediction_path, dataset)
    except ValueError as err:
        raise CLIError(str(err)) from err
    pairs = [(apply_nms(dets, args.nms_iou_thr) if args.nms_iou_thr is not None else dets, gt)
             for _, dets, gt in pairs]
    matrix = calculate_confusion_matrix(pairs, len(classes), args.score_thr, args.tp_iou_thr)
    print(f'Confusion matrix (counts; rows: gt, columns: prediction) of {len(pairs)} images, '
          f'score >= {args.score_thr}, IoU >= {args.tp_iou_thr}:')
    print(format_confusion_matrix(matrix, classes))
    out_file = osp.join(args.save_dir, 'confusion_matrix.png')
    plot_confusion_matrix(normalize_rows(matrix), classes, out_file,
                          color_theme=args.color_theme)
    print(f'Saved {out_file}')
    if args.show:
        mmcv.imshow(out_file)


if __name__ == '__main__':
    run_cli(main)
