"""Export a dense detector end to end (:class:`End2EndDetector`) to one ONNX file.

The file's inputs are ``images [N, 3, H, W]`` (resized raw pixels, padded at the bottom / right)
and ``img_shapes [N, 2]`` ((h, w) before padding); its outputs ``dets [N, P, 4]``,
``scores [N, P]``, ``labels [N, P]`` and ``num_dets [N]``. Only standard ONNX ops (opset >= 17:
``GridSample`` of the deformable convs needs 16). The ``metadata_props`` key ``fcosdet`` holds
the JSON of :func:`end2end_metadata`, what a torch-free runtime needs to resize and pad.

Shape letters: N images, H/W padded batch height/width, P = ``max_per_img``.
"""
import json
import os
import warnings

import torch
from mmengine.config import Config
from torch import nn

from .end2end import INPUT_NAMES, OUTPUT_NAMES, End2EndDetector, normalization
from .onnx_export import MIN_OPSET
from .onnx_nms import register_nms_symbolic
from .optional import require

METADATA_KEY = 'fcosdet'
METADATA_FORMAT = 1
STANDARD_DOMAINS = ('', 'ai.onnx')


def _test_resize(cfg: Config) -> dict | None:
    """The ``Resize`` step of the config's test pipeline as ``{scale: [w, h], keep_ratio,
    interpolation}`` (None without one)."""
    pipeline = cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline')
    if pipeline is None:
        pipeline = cfg.get('test_pipeline', [])
    for step in pipeline:
        if step.get('type') == 'Resize':
            if step.get('scale') is None:
                raise ValueError('end2end export: the test pipeline Resize needs a fixed scale, '
                                 f'got {dict(step)}')
            return dict(scale=[int(v) for v in step['scale']],
                        keep_ratio=bool(step.get('keep_ratio', False)),
                        interpolation=str(step.get('interpolation', 'bilinear')))
    return None


def end2end_metadata(model: nn.Module) -> dict:
    """The JSON object stored under :data:`METADATA_KEY`.

    Args:
        model (nn.Module): Detector from ``init_detector`` (``cfg``, ``dataset_meta``).

    Returns:
        dict: ``format``, ``kind`` ('end2end'), ``detector``, ``head``, ``classes``, ``resize``,
        ``pad_size_divisor``, ``pad_value``, ``mean``, ``std``, ``bgr_to_rgb``, ``score_thr``,
        ``nms_pre``, ``max_per_img``, ``nms_iou_thr``, ``min_bbox_size``.
    """
    pre = model.data_preprocessor
    mean, std = normalization(pre)
    test_cfg = model.bbox_head.test_cfg
    classes = (getattr(model, 'dataset_meta', None) or {}).get('classes')
    if classes is None:
        classes = [str(i) for i in range(model.bbox_head.num_classes)]
    return dict(format=METADATA_FORMAT, kind='end2end', detector=type(model).__name__,
                head=type(model.bbox_head).__name__, classes=list(classes),
                resize=_test_resize(model.cfg) if hasattr(model, 'cfg') else None,
                pad_size_divisor=int(pre.pad_size_divisor), pad_value=float(pre.pad_value),
                mean=mean, std=std,
                bgr_to_rgb=bool(pre._channel_conversion),
                score_thr=float(test_cfg['score_thr']), nms_pre=int(test_cfg['nms_pre']),
                max_per_img=int(test_cfg['max_per_img']),
                nms_iou_thr=float(test_cfg['nms']['iou_threshold']),
                min_bbox_size=float(test_cfg['min_bbox_size']))


def _dynamic_axes(dynamic: bool) -> dict[str, dict[int, str]] | None:
    """N, H, W of the inputs and N of every output (None for a static graph)."""
    if not dynamic:
        return None
    axes = {'images': {0: 'N', 2: 'H', 3: 'W'}, 'img_shapes': {0: 'N'}}
    axes.update({name: {0: 'N'} for name in OUTPUT_NAMES})
    return axes


def export_end2end(model: nn.Module, out_file: str, shape: tuple[int, int] = (800, 1216),
                   batch_size: int = 1, dynamic: bool = True, opset: int = MIN_OPSET,
                   slim: bool = False) -> str:
    """Write ``model`` end to end as an ONNX file, checked with ``onnx.checker``.

    Args:
        model (nn.Module): Eval-mode dense detector from ``init_detector`` (no fast path).
        out_file (str): Output ``.onnx`` path; its folder is created.
        shape (tuple[int, int]): (H, W) traced (the fixed size unless ``dynamic``).
        batch_size (int): N traced (the fixed batch size unless ``dynamic``).
        dynamic (bool): N, H and W are dynamic axes.
        opset (int): ONNX opset, at least 17.
        slim (bool): Simplify the graph with ``onnxslim`` (folds the shape arithmetic: about a
            third of the nodes, a faster session start, the same outputs and latency).

    Returns:
        str: ``out_file``.

    Raises:
        ValueError: Bad shape, batch size or opset, a training-mode model, a head without the
            decode methods, a non-standard op in the graph.
        ImportError: ``onnx`` (or, with ``slim``, ``onnxslim``) is not installed.
    """
    onnx = require('onnx')
    onnxslim = require('onnxslim') if slim else None
    if opset < MIN_OPSET:
        raise ValueError(f'export_end2end: opset must be >= {MIN_OPSET}, got {opset}')
    if len(shape) != 2 or min(shape) <= 0 or batch_size <= 0:
        raise ValueError(f'export_end2end: need a positive (H, W) shape and batch size, got '
                         f'shape={tuple(shape)}, batch_size={batch_size}')
    if model.training:
        raise ValueError('export_end2end: call model.eval() before exporting')
    register_nms_symbolic()
    wrapper = End2EndDetector(model).eval()
    device = next(model.parameters()).device
    # Mid-grey images of the traced size; the sizes differ per image so nothing depends on
    # equal shapes.
    images = torch.full((batch_size, 3, *shape), 114.0, device=device)
    img_shapes = torch.tensor([[shape[0], shape[1]]] * batch_size, dtype=torch.float32,
                              device=device)
    os.makedirs(os.path.dirname(os.path.abspath(out_file)), exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tracer and deprecation warnings of the exporter
        torch.onnx.export(wrapper, (images, img_shapes), out_file, dynamo=False,
                          opset_version=opset, input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), dynamic_axes=_dynamic_axes(dynamic),
                          do_constant_folding=True)
    graph = onnx.load(out_file)
    if onnxslim is not None:
        graph = onnxslim.slim(graph)
    custom = sorted({node.op_type for node in graph.graph.node
                     if node.domain not in STANDARD_DOMAINS})
    if custom:
        raise ValueError(f'export_end2end: non-standard ops in the graph: {custom}')
    onnx.helper.set_model_props(graph, {METADATA_KEY: json.dumps(end2end_metadata(model))})
    onnx.checker.check_model(graph)
    onnx.save(graph, out_file)
    return out_file
