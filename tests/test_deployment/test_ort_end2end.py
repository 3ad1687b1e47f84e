"""End-to-end ONNX files through fcosdet's entry points: ``init_detector`` /
``inference_detector``, ``tools/test.py`` and ``tools/infer.py`` with ``--backend onnxruntime``
return what the torch-free runtime returns (the tiny contract file of ``end2end_graph``, whose
score is the mean of the resized image's pixels, so a different resize shows)."""
import importlib.util
import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from end2end_graph import contract_meta, make_end2end_onnx
from fcosdet_runtime import Detector

from fcosdet.apis import inference_detector, init_detector, init_ort_detector
from fcosdet.deployment import ORTDetector, ORTEnd2EndDetector, onnx_file_kind, ort_model_cfg

TOOLS = Path(__file__).resolve().parents[2] / 'tools'


def _load(relative: str):
    path = TOOLS / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def end2end_onnx(tmp_path_factory) -> str:
    """The tiny file with the test scale of ``tiny_config`` (128, 96)."""
    meta = contract_meta(resize=dict(scale=[128, 96], keep_ratio=True,
                                     interpolation='bilinear'), classes=['x', 'y'])
    return make_end2end_onnx(str(tmp_path_factory.mktemp('e2e') / 'e2e.onnx'), meta)


def _assert_same(pred_instances, expected: dict) -> None:
    np.testing.assert_array_equal(pred_instances.bboxes.numpy(), expected['bboxes'])
    np.testing.assert_allclose(pred_instances.scores.numpy(), expected['scores'], rtol=1e-6)
    np.testing.assert_array_equal(pred_instances.labels.numpy(), expected['labels'])


def test_kind_selects_the_model(tiny_config, end2end_onnx, dynamic_onnx, tiny_files):
    assert onnx_file_kind(end2end_onnx) == 'end2end'
    assert onnx_file_kind(dynamic_onnx) == 'raw'  # no 'fcosdet' metadata: an older raw file
    assert ort_model_cfg({}, end2end_onnx, 2) == dict(type='ORTEnd2EndDetector',
                                                      onnx_file=end2end_onnx, num_threads=2)
    assert isinstance(init_ort_detector(tiny_files[0], dynamic_onnx), ORTDetector)
    model = init_detector(tiny_config, end2end_onnx, backend='onnxruntime')
    assert isinstance(model, ORTEnd2EndDetector)
    assert model.dataset_meta['classes'] == ('x', 'y')  # from the file, not the config


def test_inference_detector_equals_runtime(tiny_config, end2end_onnx):
    model = init_detector(tiny_config, end2end_onnx, backend='onnxruntime')
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
              for h, w in [(120, 181), (64, 40), (300, 200)]]
    runtime = Detector(end2end_onnx)
    for sample, img in zip(inference_detector(model, images), images):
        _assert_same(sample.pred_instances, runtime(img))
    dets, scores, labels, num_dets = model(torch.zeros(2, 3, 64, 96), mode='tensor')
    assert dets.shape == (2, 2, 4) and num_dets.tolist() == [1, 1]
    np.testing.assert_array_equal(dets[:, 0].numpy(), [[0, 0, 96, 64]] * 2)
    with pytest.raises(ValueError, match='inference only'):
        model(torch.zeros(1, 3, 32, 32), mode='loss')


def test_static_file_checks_the_batch(tiny_config, tmp_path):
    meta = contract_meta(resize=dict(scale=[128, 96], keep_ratio=True))
    path = make_end2end_onnx(str(tmp_path / 'static.onnx'), meta, static=(1, 128, 128))
    model = init_detector(tiny_config, path, backend='onnxruntime')
    dets = model(torch.zeros(1, 3, 64, 96), mode='tensor')[0]  # zero-padded to 128 x 128
    np.testing.assert_array_equal(dets[0, 0].numpy(), [0, 0, 96, 64])
    with pytest.raises(ValueError, match='batches of 1 images .*batch_size to 1'):
        model(torch.zeros(2, 3, 64, 96), mode='tensor')


def test_resize_mismatch_warns(tiny_files, end2end_onnx):
    # the tiny_files config resizes to (96, 64), the file was exported for (128, 96)
    with pytest.warns(UserWarning, match=r'resizes to \(96, 64\).*exported for \(128, 96\)'):
        init_detector(tiny_files[0], end2end_onnx, backend='onnxruntime')


def test_tools_test_and_infer_measure_the_runtime(tiny_config, tiny_data_root, end2end_onnx,
                                                 tmp_path):
    runtime = Detector(end2end_onnx)
    out = tmp_path / 'results.pkl'
    _load('test.py').main([tiny_config, end2end_onnx, '--backend', 'onnxruntime',
                           '--work-dir', str(tmp_path / 'work'), '--out', str(out)])
    with open(out, 'rb') as f:
        dumped = pickle.load(f)
    assert len(dumped) == len(list((Path(tiny_data_root) / 'val').glob('*.png')))
    for result in dumped:
        expected = runtime(cv2.imread(result['img_path']))
        pred = result['pred_instances']
        np.testing.assert_array_equal(np.asarray(pred['bboxes']), expected['bboxes'])
        np.testing.assert_allclose(np.asarray(pred['scores']), expected['scores'], rtol=1e-6)
    # tools/infer.py writes the JSON that fcosdet-ort writes
    from fcosdet_runtime.cli import main as fcosdet_ort
    val = str(Path(tiny_data_root) / 'val')
    _load('infer.py').main([val, tiny_config, end2end_onnx, '--backend', 'onnxruntime',
                            '--out-dir', str(tmp_path / 'infer'), '--batch-size', '2',
                            '--no-save-vis'])
    fcosdet_ort([end2end_onnx, val, '--out-dir', str(tmp_path / 'ort')])
    infer_files = sorted((tmp_path / 'infer' / 'preds').iterdir())
    assert [p.name for p in infer_files] == sorted(
        p.name for p in (tmp_path / 'ort' / 'preds').iterdir())
    for path in infer_files:
        written = json.loads(path.read_text())
        ort = json.loads((tmp_path / 'ort' / 'preds' / path.name).read_text())
        assert written['bboxes'] == ort['bboxes'] and written['labels'] == ort['labels']
        assert written['label_names'] == ort['label_names'] == ['y']
        np.testing.assert_allclose(written['scores'], ort['scores'], rtol=1e-6)


def test_exported_fcos_equals_pytorch_in_original_pixels(tiny_files, exported_end2end,
                                                         tmp_path):
    from fcosdet.datasets.demo_dataset import render_demo_image
    # demo images of two sizes and orientations, BGR; resized to <= 96 x 64
    images = [render_demo_image(0, 1, i, 120, 180)[0][..., ::-1].copy() for i in range(2)]
    images.append(render_demo_image(0, 1, 2, 150, 100)[0][..., ::-1].copy())
    expected = inference_detector(init_detector(*tiny_files), images)
    runtime = Detector(exported_end2end, num_threads=1)
    assert runtime.classes == ('a', 'b', 'c')
    through_fcosdet = inference_detector(
        init_detector(tiny_files[0], exported_end2end, backend='onnxruntime'), images)
    for exp, got, fcos in zip(expected, runtime(images), through_fcosdet):
        exp = exp.pred_instances
        assert len(exp.scores) > 10 and len(got['scores']) == len(exp.scores)
        np.testing.assert_array_equal(got['labels'], exp.labels.numpy())
        np.testing.assert_allclose(got['bboxes'], exp.bboxes.numpy(), atol=1e-3, rtol=0)
        np.testing.assert_allclose(got['scores'], exp.scores.numpy(), atol=1e-5, rtol=0)
        _assert_same(fcos.pred_instances, got)


def test_compare_runtime_tool(tiny_files, exported_end2end, end2end_onnx, tmp_path, capsys):
    from fcosdet.datasets.demo_dataset import render_demo_image
    for i, (h, w) in enumerate([(120, 180), (150, 100)]):
        cv2.imwrite(str(tmp_path / f'{i}.png'), render_demo_image(0, 1, i, h, w)[0][..., ::-1])
    compare = _load('deployment/compare_runtime.py')
    out = tmp_path / 'exact.json'
    compare.main([*tiny_files, exported_end2end, str(tmp_path), '--json', str(out)])
    totals = json.loads(out.read_text())
    assert totals['images'] == 2 and totals['matched'] == totals['pytorch'] > 10
    assert totals['extra'] == 0 and totals['exact'] is True
    assert capsys.readouterr().out.rstrip().endswith(': EXACT')
    # another file (one whole-image box per image): nothing matches
    compare.main([*tiny_files, end2end_onnx, str(tmp_path), '--json', str(out)])
    totals = json.loads(out.read_text())
    assert totals['matched'] == 0 and totals['exact'] is False
