"""``tools/test.py --tta`` end to end on the tiny model: the merged predictions equal an
independent merge of the plain run and of the model run on the mirrored images."""
import pickle
from pathlib import Path

import mmcv
import numpy as np
import pytest
from tiny_setup import write_tiny_config

from fcosdet.apis import inference_detector, init_detector

from ._cli_utils import assert_ok, run_tool
from .test_analysis_tools import load_tool

# flip before resizing, so that the reference (resize the mirrored file) does the same
TTA_CFG = """
tta_model = dict(type='DetTTAModel',
                 tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=30))
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
        [dict(type='Resize', scale=(128, 96), keep_ratio=True)],
        [dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                               'scale_factor', 'flip', 'flip_direction'))]])]
"""
# one image per batch: the same padding as inference_detector on a single image
ONE_PER_BATCH = 'test_dataloader.batch_size=1'


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _reference_merge(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                     iou_thr: float, max_num: int) -> list[tuple]:
    """Greedy per-class NMS by decreasing score, written out box by box."""
    kept: list[int] = []
    for i in np.argsort(-scores, kind='stable'):
        if all(labels[j] != labels[i] or _iou(boxes[i], boxes[j]) <= iou_thr for j in kept):
            kept.append(i)
    return [(*boxes[i], scores[i], labels[i]) for i in kept[:max_num]]


def _preds(sample: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred = sample['pred_instances']
    return pred['bboxes'].numpy(), pred['scores'].numpy(), pred['labels'].numpy()


def test_tta_merges_plain_and_mirrored_views(tiny_config: str, tiny_data_root: Path,
                                             tiny_checkpoint: Path, tmp_path: Path):
    config = write_tiny_config(tmp_path / 'tiny_tta.py', tiny_data_root, extra=TTA_CFG)
    plain, tta = tmp_path / 'plain.pkl', tmp_path / 'tta.pkl'
    for out, flags in ((plain, []), (tta, ['--tta'])):
        result = run_tool(['tools/test.py', str(config), str(tiny_checkpoint), '--out',
                           str(out), '--work-dir', str(tmp_path / 'work'), *flags,
                           '--cfg-options', ONE_PER_BATCH, 'model.test_cfg.max_per_img=15'])
        assert_ok(result)
        assert 'coco/bbox_mAP' in result.stdout + result.stderr
    plain_results = pickle.load(open(plain, 'rb'))
    tta_results = pickle.load(open(tta, 'rb'))
    model = init_detector(str(config), str(tiny_checkpoint),
                          cfg_options={'model.test_cfg.max_per_img': 15})
    assert len(tta_results) == len(plain_results) == 5
    for plain_sample, tta_sample in zip(plain_results, tta_results):
        assert tta_sample['img_id'] == plain_sample['img_id']
        # the mirrored view, run independently and mirrored back by hand
        image = mmcv.imread(plain_sample['img_path'])
        width = image.shape[1]
        mirrored = inference_detector(model, np.ascontiguousarray(image[:, ::-1]))
        m_boxes = mirrored.pred_instances.bboxes.numpy()
        m_boxes = np.stack([width - m_boxes[:, 2], m_boxes[:, 1], width - m_boxes[:, 0],
                            m_boxes[:, 3]], axis=1)
        p_boxes, p_scores, p_labels = _preds(plain_sample)
        expected = _reference_merge(
            np.concatenate([p_boxes, m_boxes]),
            np.concatenate([p_scores, mirrored.pred_instances.scores.numpy()]),
            np.concatenate([p_labels, mirrored.pred_instances.labels.numpy()]), 0.5, 30)
        t_boxes, t_scores, t_labels = _preds(tta_sample)
        got = [(*b, s, lab) for b, s, lab in zip(t_boxes, t_scores, t_labels)]
        assert len(got) > len(p_boxes)  # the mirrored view added detections
        assert np.array(got) == pytest.approx(np.array(expected), abs=1e-4)


def test_tta_defaults_without_config_keys(tiny_config: str, tiny_checkpoint: Path):
    test_tool = load_tool('test.py')
    with pytest.warns(UserWarning, match='no `tta_model`'):
        cfg = test_tool.build_cfg(test_tool.parse_args([tiny_config, str(tiny_checkpoint),
                                                        '--tta']))
    assert cfg.model.type == 'DetTTAModel' and cfg.model.module.type == 'FCOS'
    assert cfg.model.tta_cfg == dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)
    pipeline = cfg.test_dataloader.dataset.pipeline
    # the test pipeline (load, resize) then the views: flipped / not, annotations, packing
    assert [step['type'] for step in pipeline] == ['LoadImageFromFile', 'Resize',
                                                   'TestTimeAug']
    groups = pipeline[2]['transforms']
    assert [[step['type'] for step in group] for group in groups] == [
        ['RandomFlip', 'RandomFlip'], ['LoadAnnotations'], ['PackDetInputs']]
    assert [step['prob'] for step in groups[0]] == [1.0, 0.0]
    assert {'ori_shape', 'flip', 'flip_direction'} <= set(groups[2][0]['meta_keys'])
