"""ORTDetector: identical detections to PyTorch on demo images, COCO evaluation, clear errors."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope

from fcosdet.apis import inference_detector, init_detector, init_ort_detector
from fcosdet.datasets.demo_dataset import generate_demo_dataset, render_demo_image
from fcosdet.deployment import ORTDetector, export_onnx, ort_model_cfg
from fcosdet.registry import DATASETS, METRICS, MODELS


def _assert_same_detections(actual, expected) -> None:
    assert len(expected) > 0
    assert torch.equal(actual.labels, expected.labels)
    torch.testing.assert_close(actual.bboxes, expected.bboxes, atol=1e-3, rtol=0)
    torch.testing.assert_close(actual.scores, expected.scores, atol=1e-5, rtol=0)


def test_identical_detections_on_demo_images(tiny_files, dynamic_onnx):
    config, checkpoint = tiny_files
    reference = init_detector(config, checkpoint)
    ort_model = init_ort_detector(config, dynamic_onnx)
    assert isinstance(ort_model, ORTDetector)
    assert ort_model.dataset_meta['classes'] == ('a', 'b', 'c')
    # demo images of two sizes, BGR as inference_detector expects; resized to <= 96 x 64
    images = [render_demo_image(0, 1, i, 120, 180)[0][..., ::-1].copy() for i in range(2)]
    images.append(render_demo_image(0, 1, 2, 150, 100)[0][..., ::-1].copy())
    expected = inference_detector(reference, images)
    actual = inference_detector(ort_model, images)
    for act, exp in zip(actual, expected):
        _assert_same_detections(act.pred_instances, exp.pred_instances)


def test_coco_evaluation_runs_on_onnxruntime(tiny_files, dynamic_onnx, tmp_path):
    config, checkpoint = tiny_files
    demo_cfg = dict(num_train=1, num_val=3, img_size=(64, 96))
    root = generate_demo_dataset(tmp_path / 'demo', **demo_cfg)
    cfg = Config.fromfile(config)
    pipeline = copy.deepcopy(cfg.test_pipeline)
    pipeline.insert(1, dict(type='LoadAnnotations', with_bbox=True))
    with DefaultScope.overwrite_default_scope('fcosdet'):
        dataset = DATASETS.build(dict(type='DemoCocoDataset', data_root=str(root),
                                      demo_cfg=demo_cfg,
                                      ann_file='annotations/instances_val.json',
                                      data_prefix=dict(img='val/'), test_mode=True,
                                      pipeline=pipeline))
    ann_file = str(root / 'annotations' / 'instances_val.json')
    batch = pseudo_collate([dataset[i] for i in range(len(dataset))])
    results = {}
    for name, model in [('pytorch', init_detector(config, checkpoint)),
                        ('onnxruntime', init_ort_detector(config, dynamic_onnx))]:
        evaluator = Evaluator(METRICS.build(dict(type='CocoMetric', ann_file=ann_file)))
        evaluator.dataset_meta = dataset.metainfo
        with torch.no_grad():
            outputs = model.test_step(copy.deepcopy(batch))
        evaluator.process(outputs, batch)
        results[name] = (evaluator.evaluate(len(dataset)), outputs)
    assert 'coco/bbox_mAP' in results['onnxruntime'][0]
    assert results['onnxruntime'][0] == results['pytorch'][0]
    for act, exp in zip(results['onnxruntime'][1], results['pytorch'][1]):
        _assert_same_detections(act.pred_instances, exp.pred_instances)


def test_tensor_mode_and_inference_only(tiny_files, dynamic_onnx):
    config, checkpoint = tiny_files
    ort_model = init_ort_detector(config, dynamic_onnx)
    x = torch.randn(1, 3, 32, 64)
    cls_scores, bbox_preds, centernesses = ort_model(x, mode='tensor')
    with torch.no_grad():
        expected = init_detector(config, checkpoint)(x)
    for act, exp in zip([*cls_scores, *bbox_preds, *centernesses], [t for ts in expected
                                                                    for t in ts]):
        torch.testing.assert_close(act, exp, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match='inference only'):
        ort_model(x, mode='loss')
    with pytest.raises(ValueError, match='data_samples'):
        ort_model(x, mode='predict')


def test_static_file_on_other_shape_suggests_dynamic(tiny_files, tmp_path):
    config, checkpoint = tiny_files
    path = export_onnx(init_detector(config, checkpoint), str(tmp_path / 's.onnx'),
                       shape=(64, 64))
    ort_model = init_ort_detector(config, path)
    with pytest.raises(RuntimeError, match='dynamic'):
        ort_model(torch.randn(1, 3, 32, 64), mode='tensor')


def test_config_errors_name_the_file(tiny_files, dynamic_onnx, tmp_path):
    model_cfg = Config.fromfile(tiny_files[0]).model
    ort_cfg = ort_model_cfg(model_cfg, dynamic_onnx)
    assert ort_cfg['type'] == 'ORTDetector' and ort_cfg['bbox_head'] == model_cfg.bbox_head
    with pytest.raises(FileNotFoundError, match='missing.onnx'):
        MODELS.build(dict(ort_cfg, onnx_file=str(tmp_path / 'missing.onnx')))
    wrong_classes = copy.deepcopy(ort_cfg)
    wrong_classes['bbox_head']['num_classes'] = 5
    with pytest.raises(ValueError, match='3 classes'):
        MODELS.build(wrong_classes)
    wrong_levels = copy.deepcopy(ort_cfg)
    wrong_levels['bbox_head'].update(strides=[8, 16, 32],
                                     regress_ranges=[(-1, 64), (64, 128), (128, 1e8)])
    with pytest.raises(ValueError, match='outputs'):
        MODELS.build(wrong_levels)
    with pytest.raises(KeyError, match='bbox_head'):
        ort_model_cfg(dict(type='FCOS'), dynamic_onnx)
