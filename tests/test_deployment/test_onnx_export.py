"""ONNX export: graph outputs, raw-output parity with PyTorch (static and dynamic shapes)."""
import onnx
import onnxruntime as ort
import pytest
import torch

from fcosdet.apis import init_detector
from fcosdet.deployment import export_onnx, output_names, require
from fcosdet.deployment.onnx_export import NUM_LEVELS_KEY


def _session(path: str) -> ort.InferenceSession:
    return ort.InferenceSession(path, providers=['CPUExecutionProvider'])


def _torch_outputs(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        cls_scores, bbox_preds, centernesses = model(x)
    return [*cls_scores, *bbox_preds, *centernesses]


def test_output_names_order():
    assert output_names(2) == ['cls_score_0', 'cls_score_1', 'bbox_pred_0', 'bbox_pred_1',
                               'centerness_0', 'centerness_1']


def test_static_export_matches_pytorch(tiny_files, tmp_path):
    config, checkpoint = tiny_files
    model = init_detector(config, checkpoint)
    path = export_onnx(model, str(tmp_path / 'sub' / 'm.onnx'), shape=(64, 96), batch_size=2)
    assert not model.training  # exporting leaves the detector in eval mode
    graph = onnx.load(path)
    assert graph.opset_import[0].version >= 17
    assert {p.key: p.value for p in graph.metadata_props}[NUM_LEVELS_KEY] == '5'
    input_dims = [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert input_dims == [2, 3, 64, 96]
    x = torch.randn(2, 3, 64, 96)
    outputs = _session(path).run(None, {'input': x.numpy()})
    expected = _torch_outputs(model, x)
    assert len(outputs) == 15
    # stride-8 level of a 64 x 96 input: [2, C, 8, 12]
    assert outputs[0].shape == (2, 3, 8, 12) and outputs[5].shape == (2, 4, 8, 12)
    for out, exp in zip(outputs, expected):
        torch.testing.assert_close(torch.from_numpy(out), exp, atol=1e-4, rtol=0)


def test_dynamic_export_runs_other_batch_and_sizes(tiny_files, tmp_path):
    config, checkpoint = tiny_files
    model = init_detector(config, checkpoint)
    session = _session(export_onnx(model, str(tmp_path / 'd.onnx'), shape=(64, 64),
                                   dynamic=True))
    for shape in [(1, 3, 64, 64), (3, 3, 96, 32)]:
        x = torch.randn(*shape)
        for out, exp in zip(session.run(None, {'input': x.numpy()}), _torch_outputs(model, x)):
            torch.testing.assert_close(torch.from_numpy(out), exp, atol=1e-4, rtol=0)


def test_export_rejects_bad_arguments(tiny_files, tmp_path):
    model = init_detector(tiny_files[0])
    with pytest.raises(ValueError, match='opset'):
        export_onnx(model, str(tmp_path / 'x.onnx'), opset=11)
    with pytest.raises(ValueError, match='shape'):
        export_onnx(model, str(tmp_path / 'x.onnx'), shape=(0, 64))
    model.train()
    with pytest.raises(ValueError, match='eval'):
        export_onnx(model, str(tmp_path / 'x.onnx'))


def test_missing_optional_package_names_the_install():
    with pytest.raises(ImportError, match='pip install fcosdet_no_such_module'):
        require('fcosdet_no_such_module')
