"""DetInferencer and tools/infer.py on the tiny model: batched predictions equal
``inference_detector`` on the same batches; drawings and JSON files match what is returned."""
import json
from pathlib import Path

import mmcv
import numpy as np
import pytest

from fcosdet.apis import DetInferencer, inference_detector, init_detector

CLASSES = ('ellipse', 'rectangle', 'triangle', 'cross')


def _as_dict(sample) -> dict:
    pred = sample.pred_instances
    return dict(bboxes=pred.bboxes.tolist(), scores=pred.scores.tolist(),
                labels=pred.labels.tolist())


def test_batches_files_and_returned_structures(tiny_config, tiny_data_root, tiny_checkpoint,
                                               tmp_path):
    checkpoint = str(tiny_checkpoint)
    images = sorted(str(p) for p in (Path(tiny_data_root) / 'val').glob('*.png'))
    assert len(images) == 5
    inferencer = DetInferencer(tiny_config, checkpoint, device='cpu', show_progress=False)
    result = inferencer(str(Path(tiny_data_root) / 'val'), batch_size=2,
                        out_dir=str(tmp_path / 'out'), return_vis=True, pred_score_thr=0.4)
    # reference: the same batches of 2, 2 and 1 images through inference_detector
    model = init_detector(tiny_config, checkpoint)
    expected = [s for batch in (images[0:2], images[2:4], images[4:])
                for s in inference_detector(model, batch)]
    assert len(result['predictions']) == 5
    for pred, ref, path, drawing in zip(result['predictions'], expected, images,
                                        result['visualization']):
        ref = _as_dict(ref)
        assert len(ref['scores']) > 0
        np.testing.assert_allclose(pred['bboxes'], ref['bboxes'], atol=1e-4)
        np.testing.assert_allclose(pred['scores'], ref['scores'], atol=1e-6)
        assert pred['labels'] == ref['labels']
        assert pred['label_names'] == [CLASSES[i] for i in ref['labels']]
        name = Path(path).name
        saved = json.loads((tmp_path / 'out' / 'preds' / f'{Path(path).stem}.json').read_text())
        assert saved == pred
        # the saved drawing is the returned one, the size of the original image
        drawn = mmcv.imread(str(tmp_path / 'out' / 'vis' / name), channel_order='rgb')
        assert drawn.shape == mmcv.imread(path).shape
        np.testing.assert_array_equal(drawn, drawing)
    # boxes above the threshold are drawn; none above 1.0
    assert max(result['predictions'][0]['scores']) > 0.4
    original = mmcv.imread(images[0], channel_order='rgb')
    assert (result['visualization'][0] != original).any()
    bare = inferencer(images[0], return_vis=True, pred_score_thr=1.0)['visualization'][0]
    np.testing.assert_array_equal(bare, original)


def test_arrays_globs_and_bad_inputs(tiny_config, tiny_data_root, tiny_checkpoint, tmp_path):
    checkpoint = str(tiny_checkpoint)
    images = sorted((Path(tiny_data_root) / 'val').glob('*.png'))
    inferencer = DetInferencer(model=tiny_config, weights=checkpoint, device='cpu',
                               show_progress=False)
    from_file = inferencer(str(images[1]))['predictions'][0]
    from_array = inferencer(mmcv.imread(str(images[1])), return_datasamples=True)
    array_pred = _as_dict(from_array['predictions'][0])
    for key in ('bboxes', 'scores', 'labels'):
        np.testing.assert_allclose(array_pred[key], from_file[key], atol=1e-5)
    assert from_array['visualization'] is None
    globbed = inferencer(str(Path(tiny_data_root) / 'val' / '*1.png'), batch_size=3)
    assert len(globbed['predictions']) == len([p for p in images if p.stem.endswith('1')])
    with pytest.raises(FileNotFoundError, match='missing.png'):
        inferencer(str(tmp_path / 'missing.png'))
    with pytest.raises(FileNotFoundError, match='no image files'):
        inferencer(str(tmp_path))
    copy = tmp_path / 'copy' / images[0].name
    copy.parent.mkdir()
    copy.write_bytes(images[0].read_bytes())
    with pytest.raises(ValueError, match='share the file name'):
        inferencer([str(images[0]), str(copy)])
