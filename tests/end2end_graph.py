"""A tiny ONNX file with the end-to-end contract's inputs, outputs and metadata (no network).

It tests the plumbing around an end-to-end file (resize, padding, batching, rescaling, JSON)
with outputs whose every value is known: for image n with resized size ``(h, w)`` it returns

- row 0: box ``[0, 0, w, h]`` (the whole resized image), score = the mean of the image's
  valid pixels / 255, label 1;
- row 1: box ``[1, 2, 3, 4]``, score 0, label -1 (a padding row);
- ``num_dets`` = 1.

Shape letters: N images, H/W input height/width.
"""
import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CLASSES = ('a', 'b', 'c')
SCALE = (96, 64)  # (w, h) of the Resize


def contract_meta(**overrides) -> dict:
    """The ``fcosdet`` metadata of the tiny file (keys of the contract)."""
    meta = dict(format=1, kind='end2end', detector='FCOS', classes=list(CLASSES),
                resize=dict(scale=list(SCALE), keep_ratio=True, interpolation='bilinear'),
                pad_size_divisor=32, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                bgr_to_rgb=True, score_thr=0.05, max_per_img=2, nms_iou_thr=0.6)
    meta.update(overrides)
    return meta


def _const(name: str, values: list, dtype: type = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, dtype=dtype), name)


def make_end2end_onnx(path: str, meta: dict | None = None,
                      static: tuple[int, int, int] | None = None) -> str:
    """Write the tiny end-to-end file.

    Args:
        path: Output ``.onnx`` file.
        meta: Metadata object (default :func:`contract_meta`); None values drop the key.
        static: ``(N, H, W)`` of a static export (default: dynamic N, H, W).
    """
    n, h, w = static or ('N', 'H', 'W')
    nodes = [
        helper.make_node('Slice', ['img_shapes', 'zero_i', 'one_i', 'one_i'], ['h']),
        helper.make_node('Slice', ['img_shapes', 'one_i', 'two_i', 'one_i'], ['w']),
        helper.make_node('Mul', ['h', 'zero_f'], ['z']),  # [N, 1] zeros
        helper.make_node('Concat', ['z', 'z', 'w', 'h'], ['box'], axis=1),
        helper.make_node('Add', ['z', 'pad_box'], ['pad_row']),
        helper.make_node('Concat', ['box', 'pad_row'], ['boxes'], axis=1),
        helper.make_node('Reshape', ['boxes', 'dets_shape'], ['dets']),
        helper.make_node('ReduceSum', ['images', 'axes_chw'], ['total'], keepdims=0),
        helper.make_node('Mul', ['h', 'w'], ['area']),
        helper.make_node('Mul', ['area', 'norm'], ['denom']),
        helper.make_node('Squeeze', ['denom', 'one_i'], ['denom_n']),
        helper.make_node('Div', ['total', 'denom_n'], ['mean']),
        helper.make_node('Unsqueeze', ['mean', 'one_i'], ['mean_col']),
        helper.make_node('Concat', ['mean_col', 'z'], ['scores'], axis=1),
        helper.make_node('Add', ['z', 'one_f'], ['ones']),
        helper.make_node('Concat', ['ones', 'ones'], ['label_f'], axis=1),
        helper.make_node('Mul', ['label_f', 'label_pattern'], ['label_p']),
        helper.make_node('Cast', ['label_p'], ['labels'], to=TensorProto.INT64),
        helper.make_node('Squeeze', ['ones', 'one_i'], ['ones_n']),
        helper.make_node('Cast', ['ones_n'], ['num_dets'], to=TensorProto.INT64),
    ]
    inits = [_const('zero_i', [0], np.int64), _const('one_i', [1], np.int64),
             _const('two_i', [2], np.int64), _const('zero_f', [0.0]), _const('one_f', [1.0]),
             _const('pad_box', [1.0, 2.0, 3.0, 4.0]), _const('dets_shape', [-1, 2, 4], np.int64),
             _const('axes_chw', [1, 2, 3], np.int64), _const('norm', [3 * 255.0]),
             _const('label_pattern', [1.0, -1.0])]
    graph = helper.make_graph(
        nodes, 'tiny_end2end',
        [helper.make_tensor_value_info('images', TensorProto.FLOAT, [n, 3, h, w]),
         helper.make_tensor_value_info('img_shapes', TensorProto.FLOAT, [n, 2])],
        [helper.make_tensor_value_info('dets', TensorProto.FLOAT, [n, 2, 4]),
         helper.make_tensor_value_info('scores', TensorProto.FLOAT, [n, 2]),
         helper.make_tensor_value_info('labels', TensorProto.INT64, [n, 2]),
         helper.make_tensor_value_info('num_dets', TensorProto.INT64, [n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    meta = contract_meta() if meta is None else {k: v for k, v in meta.items() if v is not None}
    helper.set_model_props(model, {'fcosdet': json.dumps(meta)})
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path
