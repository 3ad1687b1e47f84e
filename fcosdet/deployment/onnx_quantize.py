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
from collections.abc import Iterable, Iterator, Sequence

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


def calibration_dataset(cfg: Config, split: str = 'test') -> object:
    """The config's test dataset, or its train dataset read with the test pipeline.

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
        return DATASETS.build(dataset_cfg)


def spread_indices(length: int, count: int) -> list[int]:
    """``min(count, length)`` indices spread evenly over ``range(length)``, ends included."""
    count = min(count, length)
    return np.linspace(0, length - 1, count).round().astype(int).tolist()


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
    dataset = calibration_dataset(cfg, split)
    for index in spread_indices(len(dataset), num_images):
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


# ---------------------------------------------------------------------------------------------
# End-to-end files (image batch → detections): int8 and fp16 up to the head's last convs.

_QUANTIZED_OPS = ('Conv', 'MatMul')  # MatMul: the deformable convs' sampled-column products


def tail_nodes(model: object) -> list[str]:
    """The head's last convs and every node after them (decoding, top-k, NMS, padding).

    A last conv is a Conv node from which no other Conv is reachable: the class, box and
    quality prediction convs of each level. Their outputs are thresholded and decoded
    directly, so this tail stays in float.

    Args:
        model: ``onnx.ProtoModel`` (nodes in topological order, as ONNX requires).

    Returns:
        list[str]: Node names, in graph order.
    """
    nodes = list(model.graph.node)
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(i)
    reaches_conv = [False] * len(nodes)  # a Conv lies strictly downstream of the node
    for i in reversed(range(len(nodes))):
        after = {j for out in nodes[i].output for j in consumers.get(out, [])}
        reaches_conv[i] = any(nodes[j].op_type == 'Conv' or reaches_conv[j] for j in after)
    in_tail = [node.op_type == 'Conv' and not reaches_conv[i] for i, node in enumerate(nodes)]
    for i, node in enumerate(nodes):  # topological order: producers are decided first
        if in_tail[i]:
            for out in node.output:
                for j in consumers.get(out, []):
                    in_tail[j] = True
    return [node.name for node, tail in zip(nodes, in_tail) if tail]


def calibration_images(cfg: Config, num_images: int,
                       split: str = 'test') -> Iterator[np.ndarray]:
    """BGR ``uint8 [H, W, 3]`` images of the config's dataset, spread evenly over it, decoded
    as its ``LoadImageFromFile`` does; the runtime resizes and pads them.

    Args:
        cfg: Model config with ``test_dataloader`` (and ``train_dataloader`` for 'train').
        num_images: How many (fewer if the dataset is smaller).
        split: 'test' or 'train' (see :func:`calibration_dataset`).
    """
    import mmcv  # the decoder of LoadImageFromFile
    dataset = calibration_dataset(cfg, split)
    for index in spread_indices(len(dataset), num_images):
        path = dataset.get_data_info(index)['img_path']
        img = mmcv.imread(path, channel_order='bgr')
        if img is None:
            raise ValueError(f'calibration image cannot be read: {path}')
        yield img


class _RuntimeFeeds:
    """``CalibrationDataReader`` of end-to-end inputs, prepared by ``fcosdet_runtime``."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def end2end_feeds(onnx_file: str, images: Iterable[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """One input dict per image (``images [1, 3, H, W]``, ``img_shapes [1, 2]``), resized and
    padded by :class:`fcosdet_runtime.Detector` as at inference."""
    detector = require('fcosdet_runtime').Detector(onnx_file)
    feeds = []
    for img in images:
        batch, shapes, _ = detector.preprocess([img])
        feeds.append(dict(images=batch, img_shapes=shapes))
    return feeds


def quantize_end2end(src: str, dst: str, calib_images: Iterable[np.ndarray],
                     per_channel: bool = True, keep_float: Sequence[str] = (),
                     min_sqnr_db: float | None = 30.0) -> dict:
    """Write an int8 (QDQ) copy of an end-to-end file, the tail kept in float.

    Convs (and MatMuls) before the head's last convs are quantized: weights per output channel,
    activations calibrated (min/max) on the images as the runtime feeds them. The tail
    (:func:`tail_nodes`) stays float. With ``min_sqnr_db``, a second pass keeps in float every
    node whose quantized input loses accuracy measurably: signal-to-quantization-noise ratio
    of that activation (its float value against its int8 round trip, on the calibration
    images) below ``min_sqnr_db``.

    Args:
        src: fp32 end-to-end ONNX file.
        dst: Output ``.onnx`` path; its folder is created.
        calib_images: BGR ``uint8 [H, W, 3]`` images (e.g. :func:`calibration_images`).
        per_channel: Per-output-channel weight scales.
        keep_float: Further node names to keep in float.
        min_sqnr_db: SQNR threshold of the second pass (None: no second pass).

    Returns:
        dict: ``calib_images``, ``quantized_nodes``, ``tail_nodes``, ``sensitive`` (node name →
        SQNR in dB of the nodes kept float by the second pass).

    Raises:
        ValueError: No calibration image.
    """
    onnx = require('onnx')
    feeds = end2end_feeds(src, calib_images)
    if not feeds:
        raise ValueError('quantize_end2end: no calibration images were given')
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = _prepare(src, os.path.join(tmp, 'prepared.onnx'))
        model = onnx.load(prepared)
        tail = tail_nodes(model)
        exclude = [*tail, *keep_float]
        _quantize_qdq(prepared, dst, feeds, per_channel, exclude)
        sensitive = {}
        if min_sqnr_db is not None:
            sensitive = {name: db for name, db in _input_sqnr(model, dst, feeds[:8]).items()
                         if db < min_sqnr_db}
            if sensitive:
                _quantize_qdq(prepared, dst, feeds, per_channel, [*exclude, *sensitive])
    quantized = count_quantized_convs(onnx.load(dst))['quantized_convs']
    return dict(calib_images=len(feeds), quantized_nodes=quantized, tail_nodes=len(tail),
                sensitive=sensitive)


def _prepare(src: str, dst: str) -> str:
    """onnxruntime's recommended clean-up before quantizing (shape inference, constant folding):
    it turns the exporter's ``Identity`` of shared conv biases into initializers, without which
    the quantized convs cannot become int8 kernels."""
    from onnxruntime.quantization.shape_inference import quant_pre_process
    quant_pre_process(src, dst, skip_symbolic_shape=True)
    return dst


def _quantize_qdq(src: str, dst: str, feeds: list[dict[str, np.ndarray]], per_channel: bool,
                  exclude: Sequence[str]) -> None:
    """onnxruntime's static QDQ quantization of ``src`` into ``dst``."""
    require('onnxruntime')
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    quantize_static(src, dst, _RuntimeFeeds(feeds), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=per_channel, op_types_to_quantize=list(_QUANTIZED_OPS),
                    nodes_to_exclude=list(exclude), calibrate_method=CalibrationMethod.MinMax)


def _input_sqnr(float_model: object, qdq_file: str,
                feeds: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """SQNR (dB) of each quantized node's activation input: the tensor before its
    QuantizeLinear against the same after DequantizeLinear, summed over ``feeds``.

    The sums of squares are computed inside the graph (two scalars per tensor), so that a
    large model at full resolution does not return every activation.
    """
    onnx = require('onnx')
    ort = require('onnxruntime')
    qdq = onnx.load(qdq_file)
    producer = {out: node for node in qdq.graph.node for out in node.output}
    pairs = {}  # float tensor → its dequantized copy, for activations (not weights)
    for node in qdq.graph.node:
        if node.op_type == 'DequantizeLinear':
            quant = producer.get(node.input[0])
            if quant is not None and quant.op_type == 'QuantizeLinear':
                pairs[quant.input[0]] = node.output[0]
    names = []
    for k, (name, deq) in enumerate(pairs.items()):
        qdq.graph.node.extend([
            onnx.helper.make_node('ReduceSumSquare', [name], [f'_sqnr_s{k}'], keepdims=0),
            onnx.helper.make_node('Sub', [name, deq], [f'_sqnr_d{k}']),
            onnx.helper.make_node('ReduceSumSquare', [f'_sqnr_d{k}'], [f'_sqnr_n{k}'],
                                  keepdims=0)])
        names += [f'_sqnr_s{k}', f'_sqnr_n{k}']
    qdq.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)
    session = ort.InferenceSession(qdq.SerializeToString(), providers=['CPUExecutionProvider'])
    sums = np.zeros((len(pairs), 2))
    for feed in feeds:
        sums += np.array(session.run(names, feed), dtype=np.float64).reshape(-1, 2)
    index = {name: k for k, name in enumerate(pairs)}
    sqnr = {}
    for node in float_model.graph.node:  # a tensor may feed several quantized nodes
        if node.op_type in _QUANTIZED_OPS and node.input[0] in index:
            signal, noise = sums[index[node.input[0]]]
            # no noise (e.g. an all-zero input, which int8 holds exactly): lossless
            sqnr[node.name] = (10 * float(np.log10(signal / noise)) if noise > 0
                               else float('inf'))
    return sqnr


def convert_end2end_fp16(src: str, dst: str) -> dict[str, int]:
    """Write an fp16 copy of an end-to-end file: the network in fp16, the inputs, outputs and
    the tail (:func:`tail_nodes`: decoding, top-k, NMS) in float32.

    onnxruntime's CPU provider runs fp16 kernels where it has them and casts around the others
    (it only speeds up on CPUs with fp16 arithmetic); the file is mainly for GPU providers.

    Returns:
        dict: ``fp16_nodes`` and ``fp32_nodes`` counts.
    """
    onnx = require('onnx')
    require('onnxruntime')
    from onnxruntime.transformers.float16 import convert_float_to_float16
    model = onnx.load(src)
    tail = tail_nodes(model)
    converted = convert_float_to_float16(model, keep_io_types=True, node_block_list=tail)
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    onnx.save(converted, dst)
    total = sum(node.op_type not in ('Cast', 'Constant') for node in model.graph.node)
    return dict(fp16_nodes=total - len(tail), fp32_nodes=len(tail))
