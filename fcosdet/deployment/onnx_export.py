"""Export the network of an FCOS detector (backbone + neck + head) to ONNX.

The graph maps a preprocessed batch ``input [N, 3, H, W]`` (normalised and padded, as given by
the data preprocessor) to the raw head outputs of every level, named ``cls_score_{l}``
``[N, C, H_l, W_l]``, ``bbox_pred_{l}`` ``[N, 4, H_l, W_l]`` (pixel distances, as in eval mode)
and ``centerness_{l}`` ``[N, 1, H_l, W_l]``. Post-processing stays in PyTorch
(:meth:`FCOSHead.predict_by_feat`), see :class:`fcosdet.deployment.ORTDetector`.

Shape letters: N images, L levels, C classes, H/W input height/width, H_l/W_l level size.
"""
import json
import os
import warnings

import torch
from torch import Tensor, nn

from .optional import require

INPUT_NAME = 'input'
OUTPUT_KINDS = ('cls_score', 'bbox_pred', 'centerness')
NUM_LEVELS_KEY = 'fcosdet_num_levels'
# The ``fcosdet`` metadata JSON of a raw-network file (end-to-end files: end2end_export.py).
RAW_METADATA = dict(format=1, kind='raw')
MIN_OPSET = 17


def output_names(num_levels: int) -> list[str]:
    """Graph output names: all class maps, then all distance maps, then all centre-ness maps."""
    return [f'{kind}_{level}' for kind in OUTPUT_KINDS for level in range(num_levels)]


class HeadOutputs(nn.Module):
    """The tensor path of a detector with a flat output tuple (what ONNX export needs).

    Args:
        detector (nn.Module): Eval-mode detector with ``extract_feat`` and ``bbox_head``.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, inputs: Tensor) -> tuple[Tensor, ...]:
        """Images ``[N, 3, H, W]`` → 3L maps in the order of :func:`output_names`."""
        cls_scores, bbox_preds, centernesses = self.detector.bbox_head(
            self.detector.extract_feat(inputs))
        return (*cls_scores, *bbox_preds, *centernesses)


def _dynamic_axes(num_levels: int) -> dict[str, dict[int, str]]:
    """N, H and W of the input (and N, H_l, W_l of every output) as dynamic axes."""
    axes = {INPUT_NAME: {0: 'N', 2: 'H', 3: 'W'}}
    for name in output_names(num_levels):
        level = name.rsplit('_', 1)[1]
        axes[name] = {0: 'N', 2: f'H_{level}', 3: f'W_{level}'}
    return axes


def export_onnx(model: nn.Module, out_file: str, shape: tuple[int, int] = (800, 1216),
                batch_size: int = 1, dynamic: bool = False, opset: int = MIN_OPSET) -> str:
    """Export ``model``'s backbone + neck + head to an ONNX file and check it.

    Args:
        model (nn.Module): Eval-mode FCOS detector (weights loaded; no fast path applied).
        out_file (str): Output ``.onnx`` path; its folder is created.
        shape (tuple[int, int]): Input (H, W) used for tracing (the fixed size unless
            ``dynamic``).
        batch_size (int): N used for tracing (the fixed batch size unless ``dynamic``).
        dynamic (bool): Make N, H and W dynamic axes.
        opset (int): ONNX opset, at least 17.

    Returns:
        str: ``out_file``.

    Raises:
        ValueError: Bad shape, batch size or opset, or a model in training mode.
        ImportError: ``onnx`` is not installed.
    """
    onnx = require('onnx')
    if opset < MIN_OPSET:
        raise ValueError(f'export_onnx: opset must be >= {MIN_OPSET}, got {opset}')
    if len(shape) != 2 or min(shape) <= 0 or batch_size <= 0:
        raise ValueError(f'export_onnx: need a positive (H, W) shape and batch size, got '
                         f'shape={tuple(shape)}, batch_size={batch_size}')
    if model.training:
        raise ValueError('export_onnx: call model.eval() before exporting')
    num_levels = len(model.bbox_head.strides)
    device = next(model.parameters()).device
    dummy = torch.zeros(batch_size, 3, *shape, device=device)
    os.makedirs(os.path.dirname(os.path.abspath(out_file)), exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tracer and deprecation warnings of the exporter
        # An eval-mode wrapper: the exporter restores the wrapper's mode recursively afterwards.
        torch.onnx.export(HeadOutputs(model).eval(), (dummy,), out_file, dynamo=False,
                          opset_version=opset, input_names=[INPUT_NAME],
                          output_names=output_names(num_levels),
                          dynamic_axes=_dynamic_axes(num_levels) if dynamic else None,
                          do_constant_folding=True)
    graph = onnx.load(out_file)
    onnx.helper.set_model_props(graph, {NUM_LEVELS_KEY: str(num_levels),
                                        'fcosdet': json.dumps(RAW_METADATA)})
    onnx.checker.check_model(graph)
    onnx.save(graph, out_file)
    return out_file
