"""End-to-end ONNX export of every detector of the family: the file, run in onnxruntime on a
padded batch of two images of different sizes, gives PyTorch ``predict``'s detections."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from mmengine.config import Config
from tiny_setup import randomise_bn_stats

from fcosdet.apis import init_detector
from fcosdet.deployment.end2end_check import match_detections, pytorch_detections
from fcosdet.deployment.end2end_export import METADATA_KEY, export_end2end
from fcosdet.deployment.onnx_nms import padded_detections

# The detector and head are filled in per test; backbone, neck and preprocessing are shared.
TINY_CONFIG = """
default_scope = 'fcosdet'
model = dict(
    type='FCOS',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='ResNet', depth=18, base_channels=8, out_indices=(1, 2, 3),
                  norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True),
    neck=dict(type='FPN', in_channels=[16, 32, 64], out_channels=16, num_outs=3))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(96, 64), keep_ratio=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                          'scale_factor')),
]
"""
GN4 = dict(type='GN', num_groups=4, requires_grad=True)
SMALL = dict(num_classes=3, in_channels=16, feat_channels=16, norm_cfg=GN4)
# Three levels (strides 8, 16, 32) keep the graphs and their export time small.
POINTS = dict(strides=(8, 16, 32), regress_ranges=((-1, 64), (64, 128), (128, 1e8)))
ANCHORS = dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=8, scales_per_octave=1,
               strides=[8, 16, 32])
# (detector type, head config) of a tiny model per detector; zero class biases are set below.
HEADS = {
    'FCOS': ('FCOS', dict(type='FCOSHead', stacked_convs=1, norm_on_bbox=True,
                          centerness_on_reg=True, **POINTS, **SMALL)),
    'FCOS-DCN': ('FCOS', dict(type='FCOSHead', stacked_convs=1, dcn_on_last_conv=True,
                              **POINTS, **SMALL)),
    'ATSS': ('ATSS', dict(type='ATSSHead', stacked_convs=1, anchor_generator=ANCHORS, **SMALL)),
    'GFL': ('GFL', dict(type='GFLHead', stacked_convs=1, reg_max=8, anchor_generator=ANCHORS,
                        **SMALL)),
    'DDOD': ('DDOD', dict(type='DDODHead', stacked_convs=1, anchor_generator=ANCHORS, **SMALL)),
    # distances in strides, not reg_denoms: random weights then give boxes of varied sizes
    'VFNet': ('VFNet', dict(type='VFNetHead', stacked_convs=1, bbox_norm_type='stride',
                            anchor_generator=dict(ANCHORS, center_offset=0.0), **POINTS,
                            **SMALL)),
    'TOOD': ('TOOD', dict(type='TOODHead', stacked_convs=2, num_dcn=1, anchor_generator=ANCHORS,
                          **SMALL)),
}
CLASS_CONVS = ('conv_cls', 'atss_cls', 'gfl_cls', 'vfnet_cls', 'tood_cls')
TEST_CFG = dict(nms_pre=60, min_bbox_size=0, score_thr=0.05,
                nms=dict(type='nms', iou_threshold=0.6), max_per_img=30)


def _model(name: str) -> torch.nn.Module:
    """The tiny model of ``name`` with random weights that give many detections."""
    detector, head = HEADS[name]
    cfg = Config.fromstring(TINY_CONFIG, '.py')
    cfg.model.type = detector
    cfg.model.bbox_head = head
    cfg.model.test_cfg = TEST_CFG
    torch.manual_seed(0)
    model = init_detector(cfg)
    randomise_bn_stats(model, seed=1)
    for conv in CLASS_CONVS:
        if hasattr(model.bbox_head, conv):
            torch.nn.init.zeros_(getattr(model.bbox_head, conv).bias)
    if name == 'TOOD':
        torch.nn.init.zeros_(model.bbox_head.cls_prob_module[2].bias)
    model.dataset_meta = dict(classes=('a', 'b', 'c'))
    return model


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU ``[A, B]`` of x1y1x2y2 boxes ``[A, 4]`` and ``[B, 4]``."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2:] - x[:, :2]).prod(-1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-9)


def _match(expected: dict, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> int:
    """How many PyTorch detections have their own ONNX detection of the same label with
    IoU >= 0.98 (or corners within 1e-3) and score within 2e-3 (greedy, by score)."""
    iou = _iou(expected['bboxes'], boxes)
    close = np.abs(expected['bboxes'][:, None] - boxes[None]).max(-1) <= 1e-3
    ok = ((iou >= 0.98) | close) & (expected['labels'][:, None] == labels[None]) \
        & (np.abs(expected['scores'][:, None] - scores[None]) <= 2e-3)
    used = np.zeros(len(scores), bool)
    for row in ok:
        free = np.flatnonzero(row & ~used)
        if len(free):
            used[free[0]] = True
    return int(used.sum())


@pytest.mark.parametrize('name', list(HEADS))
def test_end2end_onnx_matches_pytorch_predict(name, tmp_path):
    model = _model(name)
    path = export_end2end(model, str(tmp_path / f'{name}.onnx'), shape=(64, 64), batch_size=1)
    graph = onnx.load(path)
    onnx.checker.check_model(graph)
    assert {node.domain for node in graph.graph.node} <= {'', 'ai.onnx'}
    op_types = {node.op_type for node in graph.graph.node}
    assert 'NonMaxSuppression' in op_types
    if name in ('FCOS-DCN', 'DDOD', 'VFNet', 'TOOD'):  # deformable sampling, standard op
        assert 'GridSample' in op_types
    meta = json.loads({p.key: p.value for p in graph.metadata_props}[METADATA_KEY])
    assert meta == dict(
        format=1, kind='end2end', detector=HEADS[name][0], head=HEADS[name][1]['type'],
        classes=['a', 'b', 'c'],
        resize=dict(scale=[96, 64], keep_ratio=True, interpolation='bilinear'),
        pad_size_divisor=32, pad_value=0.0, mean=pytest.approx([123.675, 116.28, 103.53]),
        std=pytest.approx([58.395, 57.12, 57.375]), bgr_to_rgb=True, score_thr=0.05,
        nms_pre=60, max_per_img=30, nms_iou_thr=0.6, min_bbox_size=0.0)

    # Traced on one 64 x 64 image, run on two images (96 x 128 and 70 x 100) padded to 96 x 128;
    # the padding holds junk the graph must mask, as the data preprocessor pads with 0.
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, 3, 96, 128)).astype(np.float32)
    img_shapes = np.array([[96, 128], [70, 100]], np.float32)
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    dets, scores, labels, num_dets = session.run(
        None, dict(images=images, img_shapes=img_shapes))
    assert dets.shape == (2, 30, 4) and scores.shape == labels.shape == (2, 30)
    assert labels.dtype == num_dets.dtype == np.int64
    for img, expected in enumerate(pytorch_detections(model, images, img_shapes)):
        num = int(num_dets[img])
        assert num > 5
        assert abs(num - len(expected['scores'])) <= 0.02 * len(expected['scores'])
        matched = _match(expected, dets[img, :num], scores[img, :num], labels[img, :num])
        assert matched >= 0.98 * len(expected['scores'])
        # sorted rows, then zero padding with label -1
        assert (np.diff(scores[img, :num]) <= 0).all()
        assert (scores[img, num:] == 0).all() and (labels[img, num:] == -1).all()
        assert (dets[img, num:] == 0).all()
        if name != 'TOOD':  # TOOD's boxes are not clipped (as MMDetection's)
            height, width = img_shapes[img]
            assert dets[img, :num, 2].max() <= width and dets[img, :num, 3].max() <= height


def test_padded_detections_hand_worked():
    # Image 0: boxes 0 and 1 (class 0) overlap with IoU 81/100 > 0.5, so 1 goes; box 2 is the
    # same as box 1 but class 1, so it stays; box 3 is invalid. Image 1: one box of class 2.
    boxes = torch.tensor([[[0., 0., 10., 10.], [1., 1., 10., 10.], [1., 1., 10., 10.],
                           [50., 50., 60., 60.]],
                          [[5., 5., 8., 9.], [0., 0., 1., 1.], [0., 0., 1., 1.],
                           [0., 0., 1., 1.]]])
    scores = torch.tensor([[0.9, 0.8, 0.3, 0.95], [0.4, 0.1, 0.1, 0.1]])
    labels = torch.tensor([[0, 0, 1, 0], [2, 0, 0, 0]])
    valid = torch.tensor([[True, True, True, False], [True, False, False, False]])
    dets, top, top_labels, num = padded_detections(boxes, scores, labels, valid, 3, 0.5, 4)
    assert num.tolist() == [2, 1]
    assert top.flatten().tolist() == pytest.approx([0.9, 0.3, 0, 0, 0.4, 0, 0, 0])
    assert top_labels.tolist() == [[0, 1, -1, -1], [2, -1, -1, -1]]
    assert dets[0, :2].tolist() == [[0, 0, 10, 10], [1, 1, 10, 10]]
    assert dets[1].tolist() == [[5, 5, 8, 9], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    # max_per_img 1 keeps only the best of each image; a 9 x 9 box fails min_bbox_size 9
    _, top, _, num = padded_detections(boxes, scores, labels, valid, 3, 0.5, 1,
                                       min_bbox_size=9)
    assert num.tolist() == [1, 0] and top.flatten().tolist() == pytest.approx([0.9, 0.0])


def test_match_detections_rule():
    expected = [dict(bboxes=np.array([[0, 0, 10, 10], [100, 215.9992, 106, 216], [0, 0, 4, 4]],
                                     np.float32),
                     scores=np.array([0.9, 0.5, 0.3], np.float32), labels=np.array([1, 2, 0]))]
    # the first box qualifies with rows 0 (IoU 100 / 101) and 1 (exact) and takes the closer
    # row 1; the 0.0008 px-high box matches row 2 by its corners (IoU 0.875); the last one
    # has the wrong label
    dets = np.array([[[0, 0, 10, 10.1], [0, 0, 10, 10], [100, 215.9993, 106, 216],
                      [0, 0, 4, 4]]], np.float32)
    result = match_detections(expected, dets, np.array([[0.9, 0.9, 0.5005, 0.3]], np.float32),
                              np.array([[1, 1, 2, 1]]), np.array([4]))
    assert result['matched'] == 2 and result['num_pytorch'] == 3 and result['num_onnx'] == 4
    assert result['max_box_diff'] == pytest.approx(1e-4, abs=2e-5)
    assert result['max_score_diff'] == pytest.approx(5e-4, abs=1e-6)
