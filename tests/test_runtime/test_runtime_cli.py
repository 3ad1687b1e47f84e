"""``fcosdet-ort``: one JSON per image as ``tools/infer.py`` writes them, one-line errors."""
import json

import cv2
import numpy as np
import pytest
from fcosdet_runtime import Detector
from fcosdet_runtime.cli import main


def _write_images(folder, names_sizes) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for name, (h, w) in names_sizes:
        path = folder / name
        cv2.imwrite(str(path), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        paths.append(str(path))
    return paths


def test_writes_infer_json_per_image(tiny_onnx, tmp_path, capsys):
    paths = _write_images(tmp_path / 'imgs', [('x.png', (120, 181)), ('y.png', (40, 50)),
                                              ('z.jpg', (90, 60))])
    (tmp_path / 'imgs' / 'notes.txt').write_text('not an image')
    main([tiny_onnx, str(tmp_path / 'imgs'), '--out-dir', str(tmp_path / 'out'),
          '--batch-size', '2', '--num-threads', '1'])
    assert 'Predictions of 3 images written to' in capsys.readouterr().out
    detector = Detector(tiny_onnx)
    for path, stem in zip(paths, 'xyz'):
        with open(tmp_path / 'out' / 'preds' / f'{stem}.json') as f:
            written = json.load(f)
        expected = detector(cv2.imread(path))
        assert written['bboxes'] == expected['bboxes'].tolist()
        assert written['scores'] == expected['scores'].tolist()
        assert written['labels'] == [1] and written['label_names'] == ['b']
    assert sorted(p.name for p in (tmp_path / 'out' / 'preds').iterdir()) == [
        'x.json', 'y.json', 'z.json']


def test_colliding_stems_keep_their_extension(tiny_onnx, tmp_path):
    """``a.png`` and ``a.jpg`` in one folder: ``a.png.json`` and ``a.jpg.json``, as infer.py."""
    paths = _write_images(tmp_path / 'imgs', [('a.png', (30, 40)), ('a.jpg', (50, 20)),
                                              ('b.png', (20, 20))])
    main([tiny_onnx, *paths, '--out-dir', str(tmp_path / 'out')])
    assert sorted(p.name for p in (tmp_path / 'out' / 'preds').iterdir()) == [
        'a.jpg.json', 'a.png.json', 'b.json']
    detector = Detector(tiny_onnx)
    with open(tmp_path / 'out' / 'preds' / 'a.jpg.json') as f:
        assert json.load(f)['bboxes'] == detector(cv2.imread(paths[1]))['bboxes'].tolist()


def test_score_threshold_and_glob(tiny_onnx, tmp_path):
    black = tmp_path / 'imgs' / 'black.png'
    black.parent.mkdir()
    cv2.imwrite(str(black), np.zeros((30, 40, 3), np.uint8))  # score = mean pixel = 0
    main([tiny_onnx, str(tmp_path / 'imgs' / '*.png'), '--out-dir', str(tmp_path / 'out'),
          '--score-thr', '0.01'])
    with open(tmp_path / 'out' / 'preds' / 'black.json') as f:
        assert json.load(f) == dict(bboxes=[], scores=[], labels=[], label_names=[])


def test_errors_are_one_line(tiny_onnx, tmp_path):
    paths = _write_images(tmp_path / 'a', [('same.png', (20, 20))])
    paths += _write_images(tmp_path / 'b', [('same.png', (20, 20))])
    cases = [([tiny_onnx, *paths], "share the output name 'same.png.json'"),
             ([tiny_onnx, str(tmp_path / 'nothing')], 'not found: .*nothing'),
             ([str(tmp_path / 'no.onnx'), paths[0]], 'ONNX file not found: .*no.onnx'),
             ([tiny_onnx, paths[0], '--batch-size', '0'], '--batch-size must be >= 1'),
             ([tiny_onnx, paths[0], '--score-thr', '2'], r'--score-thr must be in \[0, 1\]')]
    for argv, message in cases:
        with pytest.raises(SystemExit, match=f'^fcosdet-ort: error: .*{message}'):
            main([*argv, '--out-dir', str(tmp_path / 'out')])
    (tmp_path / 'broken.png').write_bytes(b'not a png')
    with pytest.raises(SystemExit, match='cannot be decoded .*broken.png'):
        main([tiny_onnx, str(tmp_path / 'broken.png'), '--out-dir', str(tmp_path / 'out')])
