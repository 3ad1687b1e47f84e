"""int8 and fp16 copies of an end-to-end file: the tail (head's last convs, decoding, NMS) stays
float, the rest is quantized / halved, the runtime runs them, the sensitivity pass works."""
import numpy as np
import onnx
import pytest
from fcosdet_runtime import Detector
from onnx import TensorProto, helper, numpy_helper

from fcosdet.datasets.demo_dataset import render_demo_image
from fcosdet.deployment.onnx_quantize import (
    _input_sqnr,
    convert_end2end_fp16,
    end2end_feeds,
    quantize_end2end,
    tail_nodes,
)


def _images(count: int) -> list[np.ndarray]:
    return [render_demo_image(0, 1, i, 120, 180)[0][..., ::-1].copy() for i in range(count)]


def test_tail_nodes_hand_built_graph():
    # x -> c1 -> r1 -> c2 -> s -> a ; r1 -> c3 -> e -> a: c2 and c3 are last convs
    w = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), 'w')
    nodes = [helper.make_node('Conv', ['x', 'w'], ['t1'], name='c1'),
             helper.make_node('Relu', ['t1'], ['t2'], name='r1'),
             helper.make_node('Conv', ['t2', 'w'], ['t3'], name='c2'),
             helper.make_node('Sigmoid', ['t3'], ['t4'], name='s'),
             helper.make_node('Conv', ['t2', 'w'], ['t5'], name='c3'),
             helper.make_node('Exp', ['t5'], ['t6'], name='e'),
             helper.make_node('Add', ['t4', 't6'], ['y'], name='a')]
    info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 1, 2, 2]) for n in 'xy']
    model = helper.make_model(helper.make_graph(nodes, 'g', info[:1], info[1:], [w]))
    assert tail_nodes(model) == ['c2', 's', 'c3', 'e', 'a']


def _dequantized_weights(model: onnx.ModelProto) -> set[str]:
    """Conv/MatMul nodes whose weight comes from a DequantizeLinear."""
    producer = {out: node for node in model.graph.node for out in node.output}
    return {node.name for node in model.graph.node if node.op_type in ('Conv', 'MatMul')
            and getattr(producer.get(node.input[1]), 'op_type', '') == 'DequantizeLinear'}


FIRST_CONV = '/backbone/conv1/Conv'


@pytest.fixture(scope='module')
def int8_file(exported_end2end, tmp_path_factory) -> tuple[str, dict]:
    """The int8 copy, the first conv kept float by name, no sensitivity pass."""
    dst = str(tmp_path_factory.mktemp('int8') / 'int8.onnx')
    return dst, quantize_end2end(exported_end2end, dst, _images(2), keep_float=[FIRST_CONV],
                                 min_sqnr_db=None)


def test_int8_keeps_the_tail_float(exported_end2end, int8_file):
    fp32 = onnx.load(exported_end2end)
    tail = set(tail_nodes(fp32))
    convs = {n.name for n in fp32.graph.node if n.op_type == 'Conv'}
    # ResNet-18 20 + FPN 8 + towers 2 x 2 x 5 levels + 15 prediction convs (3 x 5 levels)
    assert len(convs) == 63 and len(convs & tail) == 15
    assert {n.op_type for n in fp32.graph.node if n.name in tail} >= {'NonMaxSuppression', 'TopK'}
    dst, stats = int8_file
    assert stats['calib_images'] == 2 and stats['sensitive'] == {}
    int8 = onnx.load(dst)
    assert _dequantized_weights(int8) == convs - tail - {FIRST_CONV}
    assert stats['quantized_nodes'] == 47
    q_inputs = {i for n in int8.graph.node if n.op_type == 'DequantizeLinear' for i in n.output}
    assert not any(set(n.input) & q_inputs for n in int8.graph.node if n.name in tail)
    # the runtime runs it; the scores (sorted: near-ties may swap) stay close to fp32's
    images = _images(2)
    for ref, got in zip(Detector(exported_end2end)(images), Detector(dst)(images)):
        assert len(got['scores']) == len(ref['scores']) > 10
        np.testing.assert_allclose(np.sort(got['scores']), np.sort(ref['scores']), atol=0.05)


def test_sensitivity_pass_keeps_noisy_nodes_float(exported_end2end, tmp_path):
    dst = str(tmp_path / 'int8.onnx')
    # no 8-bit activation reaches 100 dB: everything is sensitive, nothing stays int8
    stats = quantize_end2end(exported_end2end, dst, _images(2), min_sqnr_db=100.0)
    assert stats['quantized_nodes'] == 0 and len(stats['sensitive']) == 48
    assert all(20 < db < 100 for db in stats['sensitive'].values())
    images = _images(2)
    for ref, got in zip(Detector(exported_end2end)(images), Detector(dst)(images)):
        np.testing.assert_allclose(got['scores'], ref['scores'], atol=1e-5)


def test_sqnr_equals_hand_quantization(exported_end2end, int8_file):
    """The SQNR of a quantized conv's input against a round trip through the file's own
    scale and zero point, computed here in numpy."""
    import onnxruntime as ort
    fp32, int8 = onnx.load(exported_end2end), onnx.load(int8_file[0])
    quantized = _dequantized_weights(int8)
    conv = next(n for n in fp32.graph.node if n.name in quantized)
    tensor = conv.input[0]
    quant = next(n for n in int8.graph.node
                 if n.op_type == 'QuantizeLinear' and n.input[0] == tensor)
    inits = {i.name: numpy_helper.to_array(i) for i in int8.graph.initializer}
    scale, zero = float(inits[quant.input[1]]), int(inits[quant.input[2]])
    fp32.graph.output.append(helper.make_empty_tensor_value_info(tensor))
    session = ort.InferenceSession(fp32.SerializeToString(), providers=['CPUExecutionProvider'])
    feeds = end2end_feeds(exported_end2end, _images(2))
    signal = noise = 0.0
    for feed in feeds:
        x = session.run([tensor], feed)[0].astype(np.float64)
        q = np.clip(np.round(x / scale) + zero, 0, 255)  # round half to even, as ONNX
        noise += np.square(x - (q - zero) * scale).sum()
        signal += np.square(x).sum()
    expected = 10 * np.log10(signal / noise)
    assert _input_sqnr(fp32, int8_file[0], feeds)[conv.name] == pytest.approx(expected, abs=0.05)


def test_fp16_keeps_io_and_tail_float32(exported_end2end, tmp_path):
    dst = str(tmp_path / 'fp16.onnx')
    convert_end2end_fp16(exported_end2end, dst)
    fp32, fp16 = onnx.load(exported_end2end), onnx.load(dst)
    for a, b in [(fp32.graph.input, fp16.graph.input), (fp32.graph.output, fp16.graph.output)]:
        assert [v.type.tensor_type.elem_type for v in a] == \
            [v.type.tensor_type.elem_type for v in b]
    inits = {i.name: i.data_type for i in fp16.graph.initializer}
    tail = set(tail_nodes(fp32))
    weights = {n.name: inits.get(n.input[1]) for n in fp16.graph.node if n.op_type == 'Conv'}
    assert {name for name, t in weights.items() if t == TensorProto.FLOAT} == \
        {n.name for n in fp32.graph.node if n.op_type == 'Conv' and n.name in tail}
    assert sum(t == TensorProto.FLOAT16 for t in weights.values()) == 48
    images = _images(2)
    for ref, got in zip(Detector(exported_end2end)(images), Detector(dst)(images)):
        assert len(got['scores']) == len(ref['scores'])
        np.testing.assert_allclose(np.sort(got['scores']), np.sort(ref['scores']), atol=2e-3)
