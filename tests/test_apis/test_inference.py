import mmcv
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.runner import save_checkpoint
from torch import nn

from fcosdet.apis import inference_detector, init_detector
from fcosdet.registry import TRANSFORMS

# Hand-set head output: one confident class-1 detection at level 0 (stride 8), row 1, column 2,
# i.e. at the point (x, y) = (2.5 * 8, 1.5 * 8) = (20, 12) of the network input, with distances
# (l, t, r, b) = (4, 6, 8, 10): the box (16, 6, 28, 22) in input pixels.
INPUT_BOX = torch.tensor([16.0, 6.0, 28.0, 22.0])


def fixed_head_forward(num_classes):
    def forward(x):
        cls_scores, bbox_preds, centernesses = [], [], []
        for feat in x:
            n, _, h, w = feat.shape
            cls = torch.full((n, num_classes, h, w), -20.0)
            cls_scores.append(cls)
            bbox_preds.append(torch.tensor([4.0, 6.0, 8.0, 10.0]).view(1, 4, 1, 1).expand(
                n, 4, h, w).clone())
            centernesses.append(torch.full((n, 1, h, w), 20.0))
        cls_scores[0][:, 1, 1, 2] = 20.0
        return cls_scores, bbox_preds, centernesses
    return forward


def write_image(path, height, width, seed):
    rng = np.random.default_rng(seed)
    mmcv.imwrite(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), str(path))
    return str(path)


def test_init_detector_meta_eval_and_checkpoint(api_config, tmp_path):
    model = init_detector(api_config)
    assert not model.training
    assert model.dataset_meta == dict(classes=('a', 'b', 'c'))
    assert model.cfg.model.bbox_head.num_classes == 3

    # Weights and class names come from the checkpoint.
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.1, 0.1)
    ckpt = tmp_path / 'model.pth'
    save_checkpoint(dict(state_dict=model.state_dict(),
                         meta=dict(dataset_meta=dict(classes=('x', 'y', 'z')))), str(ckpt))
    loaded = init_detector(api_config, str(ckpt), cfg_options={'model.test_cfg.max_per_img': 7},
                           fast_path=False)  # the checkpoint's own tensors, BN not folded
    assert loaded.dataset_meta == dict(classes=('x', 'y', 'z'))
    assert loaded.cfg.model.test_cfg.max_per_img == 7
    for (name, p), q in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(p, q), name


def test_init_detector_missing_files(api_config, tmp_path):
    with pytest.raises(FileNotFoundError, match='no_such.py'):
        init_detector(str(tmp_path / 'no_such.py'))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        init_detector(api_config, str(tmp_path / 'missing.pth'))


def test_inference_equals_test_step_and_array_input(tiny_config, tiny_data_root):
    torch.manual_seed(0)
    model = init_detector(tiny_config)
    path = str(sorted((tiny_data_root / 'val').glob('*.png'))[0])
    result = inference_detector(model, path)
    assert len(result.pred_instances) > 0

    # Reference: the test pipeline built by hand (without LoadAnnotations) + model.test_step.
    steps = [TRANSFORMS.build(s) for s in model.cfg.test_dataloader.dataset.pipeline
             if s['type'] != 'LoadAnnotations']
    data = dict(img_path=path, img_id=0)
    for step in steps:
        data = step(data)
    expected = model.test_step(pseudo_collate([data]))[0].pred_instances
    for key in ('bboxes', 'scores', 'labels'):
        torch.testing.assert_close(result.pred_instances[key], expected[key])
    assert result.metainfo['ori_shape'] == mmcv.imread(path).shape[:2]

    from_array = inference_detector(model, mmcv.imread(path))  # BGR array, as mmcv loads it
    for key in ('bboxes', 'scores', 'labels'):
        torch.testing.assert_close(from_array.pred_instances[key], result.pred_instances[key])


def test_boxes_in_original_image_coordinates(api_config, tmp_path, monkeypatch):
    model = init_detector(api_config)
    monkeypatch.setattr(model.bbox_head, 'forward', fixed_head_forward(3))
    # The pipeline resizes every image to 180 x 80 (w, h), whatever its size.
    paths = [write_image(tmp_path / 'a.png', 40, 60, seed=2),   # scale (w, h) = (3, 2)
             write_image(tmp_path / 'b.png', 20, 45, seed=3)]   # scale (w, h) = (4, 4)
    results = inference_detector(model, paths)
    assert isinstance(results, list) and len(results) == 2
    for result, scale in zip(results, ([3.0, 2.0], [4.0, 4.0])):
        preds = result.pred_instances
        assert preds.labels.tolist() == [1]
        assert preds.scores.item() == pytest.approx(1.0, abs=1e-6)
        expected = INPUT_BOX / torch.tensor(scale * 2)
        torch.testing.assert_close(preds.bboxes[0], expected)
    # (16, 6, 28, 22) / (3, 2, 3, 2) for the first image.
    torch.testing.assert_close(results[0].pred_instances.bboxes[0],
                               torch.tensor([16 / 3, 3.0, 28 / 3, 11.0]))

    arrays = inference_detector(model, [mmcv.imread(p) for p in paths])
    for a, b in zip(arrays, results):
        torch.testing.assert_close(a.pred_instances.bboxes, b.pred_instances.bboxes)


def test_inference_bad_inputs(api_config, tmp_path):
    model = init_detector(api_config)
    with pytest.raises(FileNotFoundError, match='nothing.png'):
        inference_detector(model, str(tmp_path / 'nothing.png'))
    with pytest.raises(ValueError, match='empty'):
        inference_detector(model, [])
    path = write_image(tmp_path / 'img.png', 8, 8, seed=0)
    with pytest.raises(TypeError, match='all as arrays'):
        inference_detector(model, [path, mmcv.imread(path)])
    with pytest.raises(AttributeError, match='init_detector'):
        inference_detector(nn.Conv2d(3, 3, 1), path)
