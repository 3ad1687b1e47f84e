"""Static int8 quantization of an exported ONNX network with onnxruntime.

On CPUs with AVX512-VNNI (or AVX-VNNI) onnxruntime runs int8 convolutions several times faster
than fp32 ones, while bf16 needs AMX to beat fp32 (see ``docs/benchmark.md``). This module
turns the fp32 file of :func:`~fcosdet.deployment.export_onnx` into a QDQ int8 file:
activations are calibrated (min/max) on real preprocessed images, conv weights are quantized per
output channel, and the prediction convs that produce the graph outputs (class, distance and
centre-ness maps) stay fp32 because their outputs are thresholded and decoded directly.

Shape letters: N images, H/W input height/width.
"""
import copy
import itertools
import os
import tempfile
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from torch import Tensor, nn

from fcosdet.registry import DATASETS

from .onnx_export import INPUT_NAME
from .optional import require

# Ops that pass a prediction conv's output on to a graph output (scale, exp/relu, stride, ...).
_PASS_THROUGH = {'Mul', 'Div', 'Add', 'Exp', 'Relu', 'Clip', 'Identity', 'Cast', 'Sigmoid'}


def prediction_convs(model: object) -> list[str]:
    """Names of the Conv nodes whose output reaches a graph output through element-wise ops.

    Args:
        model: ``onnx.ModelProto`` of an exported detector.

    Returns:
        list[str]: Node names, one per (output, level), in graph output order.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    names = []
    for graph_output in model.graph.output:
        node = producer.get(graph_output.name)
        while node is not None and node.op_type in _PASS_THROUGH:
            node = producer.get(node.input[0])
        if node is not None and node.op_type == 'Conv':
            names.append(node.name)
    return names


def fit_to_shape(inputs: Tensor, shape: tuple[int, int], pad_value: float = 0.0) -> Tensor:
    """Pad ``[N, 3, H, W]`` at the bottom/right (or crop) to ``shape`` for a static graph."""
    height, width = shape
    out = inputs.new_full((*inputs.shape[:2], height, width), pad_value)
    h, w = min(height, inputs.shape[2]), min(width, inputs.shape[3])
    out[..., :h, :w] = inputs[..., :h, :w]
    return out


def calibration_inputs(cfg: Config, data_preprocessor: nn.Module, num_images: int,
                       split: str = 'test',
                       shape: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Preprocessed images ``[1, 3, H, W]`` of the config's dataset, for calibration.

    The images go through the test pipeline and ``data_preprocessor``, exactly as at inference.
    They are spread evenly over the dataset (first and last included).

    Args:
        cfg: Model config with ``test_dataloader`` (and ``train_dataloader`` for 'train').
        data_preprocessor: The model's data preprocessor (normalisation, padding).
        num_images: How many images (fewer if the dataset is smaller).
        split: 'test' (``test_dataloader.dataset``) or 'train' (``train_dataloader.dataset``
            read with the test pipeline, so that the evaluation images are not used).
        shape: (H, W) of a static graph: each image is padded (or cropped) to it.

    Yields:
        np.ndarray: float32 ``[1, 3, H, W]``.

    Raises:
        ValueError: ``split`` is not 'test' or 'train', or a wrapped train dataset (no
            ``pipeline`` key to replace).
    """
    if split not in ('test', 'train'):
        raise ValueError(f"calibration split must be 'test' or 'train', got {split!r}")
    dataset_cfg = copy.deepcopy(cfg[f'{split}_dataloader']['dataset'])
    if split == 'train':
        if 'pipeline' not in dataset_cfg:
            raise ValueError('calibration on train_dataloader.dataset needs its `pipeline` key '
                             f'(a dataset wrapper such as {dataset_cfg.get("type")} has none); '
                             'calibrate on the test split instead')
        dataset_cfg['pipeline'] = copy.deepcopy(cfg['test_dataloader']['dataset']['pipeline'])
        dataset_cfg['test_mode'] = True
    # the dataset builds its pipeline through mmengine's registries: look in fcosdet's first
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'fcosdet')):
        dataset = DATASETS.build(dataset_cfg)
    count = min(num_images, len(dataset))
    for index in np.linspace(0, len(dataset) - 1, count).round().astype(int):
        with torch.no_grad():
            inputs = data_preprocessor(pseudo_collate([dataset[int(index)]]), False)['inputs']
        if shape is not None:
            inputs = fit_to_shape(inputs, shape, float(getattr(data_preprocessor, 'pad_value', 0)))
        yield inputs.float().cpu().numpy()


class _Batches:
    """onnxruntime ``CalibrationDataReader`` over preprocessed batches ``[N, 3, H, W]``."""

    def __init__(self, batches: Iterable[np.ndarray]) -> None:
        self._batches: Iterator[np.ndarray] = iter(batches)
        self.count = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        if batch is None:
            return None
        self.count += 1
        return {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)}


def quantize_onnx(src: str, dst: str, calib_batches: Iterable[np.ndarray],
                  per_channel: bool = True) -> dict[str, int]:
    """Write an int8 (QDQ) copy of the fp32 ONNX file ``src`` to ``dst``.

    Args:
        src: fp32 ONNX file from :func:`~fcosdet.deployment.export_onnx`.
        dst: Output ``.onnx`` path; its folder is created.
        calib_batches: Preprocessed input batches ``[N, 3, H, W]`` (float32, normalised and
            padded as the data preprocessor makes them; of the graph's shape if it is static).
        per_channel: Quantize conv weights per output channel (more accurate, same speed).

    Returns:
        dict[str, int]: ``calib_batches`` (batches seen), ``quantized_convs`` and ``fp32_convs``.

    Raises:
        ImportError: onnx or onnxruntime is not installed.
        ValueError: ``calib_batches`` was empty.
    """
    onnx = require('onnx')
    require('onnxruntime')
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = iter(calib_batches)
    first = next(batches, None)
    if first is None:
        raise ValueError('quantize_onnx: no calibration batches were given')
    reader = _Batches(itertools.chain([first], batches))
    keep_fp32 = prediction_convs(onnx.load(src, load_external_data=False))
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, 'prepared.onnx')
        # shape inference and graph clean-up, as onnxruntime recommends before quantizing
        quant_pre_process(src, prepared, skip_symbolic_shape=True)
        quantize_static(prepared, dst, reader, quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=per_channel, op_types_to_quantize=['Conv'],
                        nodes_to_exclude=keep_fp32, calibrate_method=CalibrationMethod.MinMax)
    return dict(calib_batches=reader.count, **count_quantized_convs(onnx.load(dst)))


def count_quantized_convs(model: object) -> dict[str, int]:
    """``quantized_convs`` (weight from a DequantizeLinear) and ``fp32_convs`` of a graph."""
    producer = {out: node for node in model.graph.node for out in node.output}
    convs = [node for node in model.graph.node if node.op_type == 'Conv']
    quantized = sum(getattr(producer.get(node.input[1]), 'op_type', None) == 'DequantizeLinear'
                    for node in convs)
    return dict(quantized_convs=quantized, fp32_convs=len(convs) - quantized)
