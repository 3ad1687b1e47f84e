"""Figures of the error-analysis tools: confusion matrix and per-class precision–recall curves.

Drawn on matplotlib ``Figure`` objects with the Agg canvas (headless, no pyplot state).
Shape letters: C classes, T IoU thresholds, R recall points.
"""
from __future__ import annotations

import math
import os.path as osp

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mmengine.utils import mkdir_or_exist


def _save(fig: Figure, out_file: str, dpi: int) -> None:
    """Write ``fig`` as an image (format from the extension), creating the folder."""
    mkdir_or_exist(osp.dirname(osp.abspath(out_file)))
    FigureCanvasAgg(fig)
    fig.savefig(out_file, dpi=dpi)


def plot_confusion_matrix(percent: np.ndarray, classes: list[str], out_file: str,
                          title: str = 'Normalized Confusion Matrix',
                          color_theme: str = 'plasma', dpi: int = 100) -> None:
    """Draw a row-normalised confusion matrix with each cell's percentage.

    Args:
        percent: [C + 1, C + 1] row percentages; rows gt, columns predictions, index C
            background.
        classes: C class names.
        out_file: Image file to write (e.g. ``.png``).
        title: Figure title.
        color_theme: A matplotlib colormap name.
        dpi: Resolution of the file.
    """
    names = [*classes, 'background']
    side = max(4.0, 0.6 * len(names) + 1.5)
    fig = Figure(figsize=(side + 1, side), layout='constrained')
    ax = fig.add_subplot()
    image = ax.imshow(percent, cmap=color_theme, vmin=0, vmax=100)
    fig.colorbar(image, ax=ax, shrink=0.8, label='% of the row')
    ax.set_title(title)
    ax.set_xlabel('Prediction')
    ax.set_ylabel('Ground truth')
    ticks = np.arange(len(names))
    ax.set_xticks(ticks, names, rotation=45, ha='right', rotation_mode='anchor')
    ax.set_yticks(ticks, names)
    fontsize = max(5, min(10, 120 // len(names)))
    for (row, col), value in np.ndenumerate(percent):
        # readable on both ends of the colormap
        colour = 'black' if value > 60 else 'white'
        ax.text(col, row, f'{value:.0f}', ha='center', va='center', color=colour,
                fontsize=fontsize)
    _save(fig, out_file, dpi)


def plot_pr_curves(recall: np.ndarray, precision: np.ndarray, iou_thrs: np.ndarray,
                   classes: list[str], out_file: str, ncols: int = 4, dpi: int = 100) -> None:
    """Draw one precision–recall panel per class.

    Each panel shows the curve at IoU 0.50 and 0.75 (when evaluated) and the mean precision
    over all thresholds (whose area is the class's COCO AP), with the AP of each in the legend.

    Args:
        recall: [R] recall points.
        precision: [C, T, R]; NaN where undefined (the panel then says "no gt").
        iou_thrs: [T] IoU thresholds.
        classes: C class names.
        out_file: Image file to write (e.g. ``.png``).
        ncols: Panels per row.
        dpi: Resolution of the file.
    """
    num = len(classes)
    ncols = min(ncols, num)
    nrows = math.ceil(num / ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.8 * nrows), layout='constrained')
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    curves = [(f'IoU={t:.2f}', np.flatnonzero(np.isclose(iou_thrs, t))) for t in (0.5, 0.75)]
    curves.append((f'IoU={iou_thrs[0]:.2f}:{iou_thrs[-1]:.2f}', np.arange(len(iou_thrs))))
    for ax, name, per_class in zip(axes, classes, precision):
        ax.set_title(name, fontsize=10)
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel='recall', ylabel='precision')
        if np.isnan(per_class).all():
            ax.text(0.5, 0.5, 'no gt', ha='center', va='center')
            continue
        for label, rows in curves:
            if rows.size:
                curve = per_class[rows].mean(axis=0)
                ax.plot(recall, curve, label=f'{label} (AP {curve.mean():.3f})')
        ax.legend(fontsize=7, loc='lower left')
        ax.grid(alpha=0.3)
    for ax in axes[num:]:
        ax.axis('off')
    _save(fig, out_file, dpi)
