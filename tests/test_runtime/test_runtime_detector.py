"""``fcosdet_runtime.Detector`` on the tiny end-to-end file: the boxes come back in the image's
own pixels, the padding rows are dropped, a list is one batched run, a static file is fed in
chunks, and bad files or images fail in one line."""
import json

import numpy as np
import pytest
from end2end_graph import CLASSES, contract_meta, make_end2end_onnx
from fcosdet_runtime import Detector, rescale_size


def _image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _expected(img: np.ndarray) -> tuple[np.ndarray, float]:
    """Box [0, 0, w, h] of the resized image mapped back, and its mean pixel / 255."""
    import cv2
    h, w = img.shape[:2]
    new_w, new_h = rescale_size(w, h, (96, 64))
    resized = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    factor = np.array([new_w / w, new_h / h] * 2, dtype=np.float32)
    box = np.array([0, 0, new_w, new_h], dtype=np.float32) / factor
    return box, resized.astype(np.float64).mean() / 255


def test_single_image(tiny_onnx):
    detector = Detector(tiny_onnx, num_threads=1)
    assert detector.classes == CLASSES
    img = _image(120, 181, 0)  # resized to 96 x 64 (factor 0.53), padded to 96 x 64
    result = detector(img)
    assert set(result) == {'bboxes', 'scores', 'labels'}
    assert result['bboxes'].dtype == np.float32 and result['labels'].dtype == np.int64
    box, score = _expected(img)
    np.testing.assert_array_equal(result['bboxes'], box[None])  # the padding row is dropped
    np.testing.assert_allclose(result['bboxes'], [[0, 0, 181, 120]], atol=1e-3)
    np.testing.assert_allclose(result['scores'], [score], rtol=1e-5)
    np.testing.assert_array_equal(result['labels'], [1])


def test_batch_is_one_run_and_equals_single_calls(tiny_onnx, monkeypatch):
    detector = Detector(tiny_onnx, num_threads=1)
    images = [_image(120, 181, 1), _image(150, 100, 2), _image(20, 30, 3)]
    singles = [detector(img) for img in images]
    shapes = []
    run = detector.run
    monkeypatch.setattr(detector, 'run', lambda x, s: shapes.append(x.shape) or run(x, s))
    batched = detector(images)
    assert shapes == [(3, 3, 96, 96)]  # 64 x 96, 64 x 43 and 64 x 96 padded to 96 x 96
    for single, result in zip(singles, batched):
        np.testing.assert_array_equal(result['bboxes'], single['bboxes'])
        np.testing.assert_allclose(result['scores'], single['scores'], rtol=1e-6)
    with pytest.raises(ValueError, match='empty list'):
        detector([])


def test_static_file_runs_in_chunks(static_onnx, tiny_onnx, monkeypatch):
    detector = Detector(static_onnx, num_threads=1)
    images = [_image(120, 181, 4), _image(20, 64, 5), _image(100, 150, 6)]
    shapes = []
    run = detector.run
    monkeypatch.setattr(detector, 'run', lambda x, s: shapes.append(x.shape) or run(x, s))
    results = detector(images)
    assert shapes == [(2, 3, 64, 96)] * 2  # the last chunk is filled up to the fixed batch
    assert len(results) == 3
    for img, result in zip(images, results):
        expected = Detector(tiny_onnx)(img)
        np.testing.assert_array_equal(result['bboxes'], expected['bboxes'])
        np.testing.assert_allclose(result['scores'], expected['scores'], rtol=1e-6)
    # mmcv's keep-ratio rule turns a portrait image portrait: 96 x 30 does not fit 64 x 96
    with pytest.raises(ValueError, match='resized image of 96 x 30 does not fit'):
        detector(_image(64, 20, 7))


def test_bad_images_fail_in_one_line(tiny_onnx):
    detector = Detector(tiny_onnx)
    for bad, desc in [(np.zeros((10, 10, 3), np.float32), 'float32'),
                      (np.zeros((3, 10, 10), np.uint8), r'\(3, 10, 10\)'),
                      (np.zeros((10, 10), np.uint8), r'\(10, 10\)'), ('img.jpg', 'str')]:
        with pytest.raises(ValueError, match=f'BGR uint8 H x W x 3 array, got .*{desc}'):
            detector(bad if isinstance(bad, np.ndarray) else [bad])


def test_files_that_are_not_end_to_end_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.onnx'):
        Detector(str(tmp_path / 'missing.onnx'))
    cases = [(dict(kind='raw'), 'raw-network export'),
             (dict(kind='mystery'), "kind must be 'end2end' or 'raw'"),
             (dict(format=2), 'format 2 is newer'),
             (dict(resize=dict(scale=[96])), 'resize.scale'),
             (dict(resize=[96, 64]), "'resize' must be an object or null"),
             (dict(resize=dict(scale=[96, 64], interpolation='cubic')), 'interpolation'),
             (dict(classes=None), "'classes' must be a list")]
    for i, (overrides, message) in enumerate(cases):
        path = make_end2end_onnx(str(tmp_path / f'bad{i}.onnx'), contract_meta(**overrides))
        with pytest.raises(ValueError, match=message):
            Detector(path)


def test_file_without_metadata_or_with_other_outputs(tmp_path):
    import onnx
    path = make_end2end_onnx(str(tmp_path / 'plain.onnx'))
    model = onnx.load(path)
    del model.metadata_props[:]
    onnx.save(model, path)
    with pytest.raises(ValueError, match="has no 'fcosdet' metadata"):
        Detector(path)
    model.graph.output[3].name = 'count'
    model.graph.node[-1].output[0] = 'count'
    onnx.helper.set_model_props(model, {'fcosdet': json.dumps(contract_meta())})
    onnx.save(model, path)
    with pytest.raises(ValueError, match="outputs .*'num_dets'.*'count'"):
        Detector(path)


def test_file_of_a_pipeline_without_resize(tmp_path):
    path = make_end2end_onnx(str(tmp_path / 'noresize.onnx'), contract_meta(resize=None))
    result = Detector(path)(_image(50, 70, 8))  # padded to 64 x 96, not resized
    np.testing.assert_array_equal(result['bboxes'], [[0, 0, 70, 50]])
