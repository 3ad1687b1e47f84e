"""tools/infer.py: folders and globs in batches, image_demo's flags, the onnxruntime backend."""
import json
from pathlib import Path

import mmcv
import numpy as np
import pytest

from fcosdet.apis import DetInferencer, init_detector
from fcosdet.apis.det_inferencer import prediction_file_names
from fcosdet.deployment import export_onnx

from .test_analysis_tools import load_tool

infer = load_tool('infer.py')


def _preds(folder: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob('*.json'))}


def test_folder_glob_and_onnxruntime(tiny_config, tiny_data_root, tiny_checkpoint, tmp_path,
                                     capsys):
    val = Path(tiny_data_root) / 'val'
    infer.main([str(val), tiny_config, str(tiny_checkpoint), '--out-dir', str(tmp_path / 'a'),
                '--batch-size', '3', '--score-thr', '0.4'])
    assert 'Results of 5 images written' in capsys.readouterr().out
    preds = _preds(tmp_path / 'a' / 'preds')
    assert sorted(preds) == sorted(p.stem for p in val.glob('*.png'))
    assert sorted(p.name for p in (tmp_path / 'a' / 'vis').iterdir()) == sorted(
        p.name for p in val.glob('*.png'))
    # a glob, image_demo's alias of the threshold flag, no drawings, the same network in
    # onnxruntime: the same detections
    onnx_file = export_onnx(init_detector(tiny_config, str(tiny_checkpoint)),
                            str(tmp_path / 'tiny.onnx'), shape=(96, 128), dynamic=True)
    infer.main([str(val / '*.png'), tiny_config, onnx_file, '--backend', 'onnxruntime',
                '--out-dir', str(tmp_path / 'b'), '--batch-size', '3', '--pred-score-thr', '0.4',
                '--no-save-vis'])
    assert not (tmp_path / 'b' / 'vis').exists()
    ort_preds = _preds(tmp_path / 'b' / 'preds')
    assert sorted(ort_preds) == sorted(preds)
    for name, pred in ort_preds.items():
        assert pred['labels'] == preds[name]['labels']
        np.testing.assert_allclose(pred['bboxes'], preds[name]['bboxes'], atol=1e-2)
        np.testing.assert_allclose(pred['scores'], preds[name]['scores'], atol=1e-4)


def test_out_file_and_bad_flags(tiny_config, tiny_data_root, tiny_checkpoint, tmp_path):
    img = sorted((Path(tiny_data_root) / 'val').glob('*.png'))[0]
    out = tmp_path / 'drawn.png'
    infer.main([str(img), tiny_config, str(tiny_checkpoint), '--out-file', str(out),
                '--out-dir', str(tmp_path / 'o')])
    assert mmcv.imread(str(out)).shape == mmcv.imread(str(img)).shape
    assert not (tmp_path / 'o' / 'vis').exists() and (tmp_path / 'o' / 'preds').is_dir()
    ckpt = str(tiny_checkpoint)
    for argv, message in [
            ([str(img.parent), tiny_config, ckpt, '--out-file', str(out)], 'single image'),
            ([str(tmp_path / 'none.png'), tiny_config, ckpt], 'none.png'),
            ([str(img), tiny_config, ckpt, '--batch-size', '0'], '--batch-size'),
            ([str(img), tiny_config, str(tmp_path / 'no.pth')], 'no.pth'),
            ([str(img), str(tmp_path / 'no.py'), ckpt], 'no.py')]:
        with pytest.raises(infer.CLIError, match=message):
            infer.main(argv)


def test_predictions_of_same_stem_images_do_not_overwrite(tiny_config, tiny_data_root,
                                                          tiny_checkpoint, tmp_path):
    """``a.png`` and ``a.jpg`` in one folder: two JSON files, each with its image's detections."""
    src = sorted((Path(tiny_data_root) / 'val').glob('*.png'))
    folder = tmp_path / 'in'
    folder.mkdir()
    (folder / 'a.png').write_bytes(src[0].read_bytes())
    mmcv.imwrite(mmcv.imread(str(src[1])), str(folder / 'a.jpg'))
    (folder / 'b.png').write_bytes(src[2].read_bytes())
    assert prediction_file_names(['a.png', 'a.jpg', 'b.png']) == ['a.png.json', 'a.jpg.json',
                                                                   'b.json']
    inferencer = DetInferencer(tiny_config, str(tiny_checkpoint), device='cpu',
                               show_progress=False)
    result = inferencer(str(folder), batch_size=2, out_dir=str(tmp_path / 'out'))
    preds = _preds(tmp_path / 'out' / 'preds')
    assert sorted(preds) == ['a.jpg', 'a.png', 'b']  # file stems: a.jpg.json, a.png.json, b.json
    # list_images sorts: a.jpg, a.png, b.png
    for stem, pred in zip(['a.jpg', 'a.png', 'b'], result['predictions']):
        assert preds[stem] == pred
    assert preds['a.jpg']['scores'] != preds['a.png']['scores']  # different images
    (folder / 'a.png.jpg').write_bytes(src[3].read_bytes())
    with pytest.raises(ValueError, match='predictions of .* would both be written to a.png.json'):
        inferencer(str(folder), out_dir=str(tmp_path / 'out2'))
