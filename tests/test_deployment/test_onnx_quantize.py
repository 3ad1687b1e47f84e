"""int8 (QDQ) quantization of the exported network: which convs, calibration data, accuracy."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope

from fcosdet.apis import init_detector
from fcosdet.deployment.onnx_quantize import (
    calibration_inputs,
    count_quantized_convs,
    fit_to_shape,
    prediction_convs,
    quantize_onnx,
)
from fcosdet.registry import DATASETS

PREDICTION_WEIGHTS = {f'detector.bbox_head.{name}.weight'
                      for name in ('conv_cls', 'conv_reg', 'conv_centerness')}


def _run(path: str, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    return session.run(None, {'input': x})


def _images(count: int, seed: int) -> list[np.ndarray]:
    """Preprocessed-looking inputs: smooth random images in the normalised range."""
    gen = torch.Generator().manual_seed(seed)
    images = []
    for _ in range(count):
        low = torch.randn(1, 3, 8, 12, generator=gen)
        images.append(torch.nn.functional.interpolate(low, size=(64, 96), mode='bilinear')
                      .numpy().astype(np.float32))
    return images


def test_prediction_convs_are_the_three_output_convs_of_every_level(dynamic_onnx):
    graph = onnx.load(dynamic_onnx)
    names = prediction_convs(graph)
    nodes = {node.name: node for node in graph.graph.node}
    assert len(names) == 15  # 3 maps x 5 levels, the head's convs shared over the levels
    assert {nodes[name].input[1] for name in names} == PREDICTION_WEIGHTS
    assert all(nodes[name].op_type == 'Conv' for name in names)


def test_fit_to_shape_pads_bottom_right_and_crops():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    padded = fit_to_shape(x, (6, 7), pad_value=-1.0)
    assert padded.shape == (2, 3, 6, 7)
    assert torch.equal(padded[..., :4, :5], x)
    assert (padded[..., 4:, :] == -1).all() and (padded[..., :, 5:] == -1).all()
    assert torch.equal(fit_to_shape(x, (3, 2)), x[..., :3, :2])


def test_quantized_file_keeps_prediction_convs_fp32_and_stays_close(dynamic_onnx, tmp_path):
    out = str(tmp_path / 'int8.onnx')
    stats = quantize_onnx(dynamic_onnx, out, _images(4, seed=0))
    graph = onnx.load(out)
    total = sum(node.op_type == 'Conv' for node in graph.graph.node)
    assert stats == dict(calib_batches=4, quantized_convs=total - 15, fp32_convs=15)
    assert count_quantized_convs(graph) == dict(quantized_convs=total - 15, fp32_convs=15)
    producer = {out: node.op_type for node in graph.graph.node for out in node.output}
    # prediction conv weights are plain fp32 initializers; the backbone's are dequantized int8
    weights = {init.name: init for init in graph.graph.initializer}
    for name in PREDICTION_WEIGHTS:
        assert weights[name].data_type == onnx.TensorProto.FLOAT and name not in producer
    assert any(init.data_type == onnx.TensorProto.INT8 for init in graph.graph.initializer)

    x = _images(1, seed=1)[0]  # not a calibration image
    expected, actual = _run(dynamic_onnx, x), _run(out, x)
    errors = [float(np.abs(a - e).max() / np.abs(e).max()) for a, e in zip(actual, expected)]
    # 8-bit activations over ~20 layers: up to ~10 % of a map's range here, never exact
    assert max(errors) < 0.15 and min(errors) > 0


def test_quantize_needs_calibration_batches(dynamic_onnx, tmp_path):
    with pytest.raises(ValueError, match='no calibration batches'):
        quantize_onnx(dynamic_onnx, str(tmp_path / 'int8.onnx'), [])
    assert not (tmp_path / 'int8.onnx').exists()


def test_calibration_inputs_are_the_preprocessed_pipeline_images(tiny_config):
    cfg = Config.fromfile(tiny_config)
    model = init_detector(cfg)
    with DefaultScope.overwrite_default_scope('fcosdet'):
        train_cfg = cfg.train_dataloader.dataset.copy()
        train_cfg.update(pipeline=cfg.test_dataloader.dataset.pipeline, test_mode=True)
        train_set = DATASETS.build(train_cfg)
    batches = list(calibration_inputs(cfg, model.data_preprocessor, 3, split='train'))
    assert len(batches) == 3
    # evenly spread over the 8 training images: 0, 3.5 -> 4 (round half to even), 7
    for batch, index in zip(batches, (0, 4, 7)):
        with torch.no_grad():
            expected = model.data_preprocessor(pseudo_collate([train_set[index]]), False)
        np.testing.assert_array_equal(batch, expected['inputs'].numpy())
    # more images asked than the 5 test images: each once; a static shape pads them
    test_batches = list(calibration_inputs(cfg, model.data_preprocessor, 50, shape=(160, 160)))
    assert len(test_batches) == 5
    assert all(b.shape == (1, 3, 160, 160) and (b[..., 128:, :] == 0).all()
               for b in test_batches)
    with pytest.raises(ValueError, match="'test' or 'train'"):
        next(calibration_inputs(cfg, model.data_preprocessor, 1, split='val'))
