"""Sliced inference: a stub detector with known predictions gives hand-computed merged boxes;
the API (inference_detector, DetInferencer) and the tiny FCOS agree with an independent
tile-by-tile reference."""
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.structures import InstanceData
from torch import nn

from fcosdet.apis import DetInferencer, inference_detector, init_detector
from fcosdet.models.test_time_augs import SlicedDetModel
from fcosdet.models.test_time_augs.sliced_model import check_slice_cfg, split_slicing_pipeline
from fcosdet.structures import DetDataSample
from fcosdet.utils import register_all_modules

# every view is resized to 50 x 50, so a 100 x 100 tile is halved (scale_factor 0.5)
TILE_PIPELINE = [dict(type='Resize', scale=(50, 50), keep_ratio=False),
                 dict(type='PackDetInputs', meta_keys=('img_id', 'ori_shape', 'img_shape',
                                                       'scale_factor'))]


class StubDetector(nn.Module):
    """Predicts one box around the white pixels of each view (class 0, score 0.5 + count / 1e4),
    mapped back to the view's own pixels by ``scale_factor`` like a real detector."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[tuple]] = []

    def test_step(self, data: dict) -> list[DetDataSample]:
        self.batches.append([tuple(img.shape) for img in data['inputs']])
        for img, sample in zip(data['inputs'], data['data_samples']):
            ys, xs = torch.nonzero(img[0] > 128, as_tuple=True)
            sx, sy = sample.metainfo['scale_factor']
            boxes = (torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]).float()
                     / torch.tensor([sx, sy, sx, sy]) if len(xs) else torch.zeros(0, 4))
            sample.pred_instances = InstanceData(
                bboxes=boxes, scores=torch.full((len(boxes),), 0.5 + len(xs) / 1e4),
                labels=torch.zeros(len(boxes), dtype=torch.long))
        return data['data_samples']


@pytest.fixture(scope='module', autouse=True)
def _registered():
    register_all_modules(init_default_scope=True)


def _image_batch(height: int, width: int, squares: list[tuple]) -> dict:
    """A black BGR image with white squares (x1, y1, x2, y2), as the dataset packs it."""
    img = torch.zeros(3, height, width, dtype=torch.uint8)
    for x1, y1, x2, y2 in squares:
        img[:, y1:y2, x1:x2] = 255
    sample = DetDataSample(metainfo=dict(img_id=7, ori_shape=(height, width)))
    return dict(inputs=[img], data_samples=[sample])


def _sliced(merge: str = 'nms', full_image: bool = False, batch_size: int = 8):
    stub = StubDetector()
    model = SlicedDetModel(stub, TILE_PIPELINE, dict(slice_size=(100, 100), overlap=0.2,
                                                     merge=merge, full_image=full_image,
                                                     batch_size=batch_size))
    return model, stub


def test_boxes_shifted_back_then_merged():
    # 200 x 300 image, tiles at x 0, 80, 160, 200 and y 0, 80, 100. The square
    # (150, 40)-(170, 60) lies whole in tile (80, 0) and in part (x >= 160) in tile (160, 0).
    batch = _image_batch(200, 300, [(150, 40, 170, 60)])
    model, stub = _sliced('nms')
    (nms,) = model.test_step(batch)
    # whole: 10 x 10 white pixels after halving -> score 0.51; part: 5 x 10 -> 0.505.
    # IoU 200 / 400 = 0.5 is not > 0.5: NMS keeps both
    assert nms.pred_instances.bboxes.tolist() == [[150., 40., 170., 60.], [160., 40., 170., 60.]]
    assert nms.pred_instances.scores.tolist() == pytest.approx([0.51, 0.505])
    assert nms.metainfo['img_id'] == 7
    assert stub.batches == [[(3, 50, 50)] * 8, [(3, 50, 50)] * 4]  # 12 tiles, batches of 8
    # NMM: IoS 200 / 200 = 1 -> one enclosing box with the best score
    (nmm,) = _sliced('nmm')[0].test_step(_image_batch(200, 300, [(150, 40, 170, 60)]))
    assert nmm.pred_instances.bboxes.tolist() == [[150., 40., 170., 60.]]
    assert nmm.pred_instances.scores.tolist() == pytest.approx([0.51])


def _stub_on_whole_image(model: SlicedDetModel, batch: dict) -> list[float]:
    """The stub's box for the whole image through the tile pipeline, in image pixels."""
    packed = model._pack(batch['inputs'][0], batch['data_samples'][0])
    (pred,) = StubDetector().test_step(pseudo_collate([packed]))
    return pred.pred_instances.bboxes[0].tolist()


def test_full_image_pass_adds_one_view():
    model, stub = _sliced('nmm', full_image=True, batch_size=5)
    batch = _image_batch(200, 300, [(100, 120, 140, 160)])
    whole = _stub_on_whole_image(model, batch)  # 300 x 200 -> 50 x 50: not exact
    (pred,) = model.test_step(batch)
    assert [len(b) for b in stub.batches] == [5, 5, 3]  # 12 tiles + the whole image
    assert whole != [100., 120., 140., 160.]
    # NMM: the tiles that hold the square see it exactly; the whole-image box joins them
    expected = [min(100., whole[0]), min(120., whole[1]), max(140., whole[2]),
                max(160., whole[3])]
    assert pred.pred_instances.bboxes.tolist() == [pytest.approx(expected)]


def test_image_no_larger_than_a_tile_is_predicted_once():
    model, stub = _sliced('nmm', full_image=True)
    batch = _image_batch(60, 80, [(10, 20, 30, 40)])
    whole = _stub_on_whole_image(model, batch)
    (pred,) = model.test_step(batch)
    assert stub.batches == [[(3, 50, 50)]]  # once, no extra full-image pass
    assert pred.pred_instances.bboxes.tolist() == [whole]


def test_slice_cfg_and_pipeline_split():
    with pytest.raises(ValueError, match='slice size'):
        check_slice_cfg(dict(slice_size=(0, 10)))
    with pytest.raises(ValueError, match='overlap'):
        check_slice_cfg(dict(slice_size=(10, 10), overlap=1.0))
    with pytest.raises(ValueError, match="merge must be one of .* got 'wbf'"):
        check_slice_cfg(dict(slice_size=(10, 10), merge='wbf'))
    with pytest.raises(ValueError, match='unknown keys'):
        check_slice_cfg(dict(slice_size=(10, 10), tile=3))
    pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(8, 8)),
                dict(type='LoadAnnotations'), dict(type='PackDetInputs', meta_keys=('a',))]
    image, tile = split_slicing_pipeline(pipeline)
    assert [s['type'] for s in image] == ['LoadImageFromFile', 'LoadAnnotations',
                                          'PackDetInputs']
    assert [s['type'] for s in tile] == ['Resize', 'PackDetInputs']
    with pytest.raises(ValueError, match='TestTimeAug'):
        split_slicing_pipeline([dict(type='LoadImageFromFile'), dict(type='TestTimeAug')])


def _reference(model, img: np.ndarray, size: tuple[int, int], starts: tuple[list, list]):
    """Tile by tile through plain inference_detector, shifted by hand, class-aware NMS 0.5
    written out box by box."""
    boxes, scores, labels = [], [], []
    for y in starts[1]:
        for x in starts[0]:
            pred = inference_detector(model, np.ascontiguousarray(
                img[y:y + size[0], x:x + size[1]])).pred_instances
            boxes += (pred.bboxes + torch.tensor([x, y, x, y])).tolist()
            scores += pred.scores.tolist()
            labels += pred.labels.tolist()
    boxes, scores, labels = torch.tensor(boxes), torch.tensor(scores), torch.tensor(labels)
    kept: list[int] = []
    for i in torch.argsort(-scores, stable=True).tolist():
        b = boxes[i]
        if all(labels[j] != labels[i] or _iou(b, boxes[j]) <= 0.5 for j in kept):
            kept.append(i)
    return boxes[kept], scores[kept]


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    w = (torch.minimum(a[2], b[2]) - torch.maximum(a[0], b[0])).clamp(min=0)
    h = (torch.minimum(a[3], b[3]) - torch.maximum(a[1], b[1])).clamp(min=0)
    inter = w * h
    area = (a[2:] - a[:2]).prod() + (b[2:] - b[:2]).prod()
    return float(inter / (area - inter))


def test_api_slicing_matches_tile_by_tile_reference(api_config):
    torch.manual_seed(0)
    model = init_detector(api_config)
    torch.nn.init.zeros_(model.bbox_head.conv_cls.bias)  # detect something
    img = np.random.default_rng(0).integers(0, 256, (70, 110, 3), dtype=np.uint8)
    # tiles 40 x 60, overlap 0.25: x starts 0, 45, 50; y starts 0, 30
    got = inference_detector(model, img, slice_size=(40, 60), slice_overlap=0.25)
    ref_boxes, ref_scores = _reference(model, img, (40, 60), ([0, 45, 50], [0, 30]))
    n = min(len(ref_scores), 100)
    assert len(got.pred_instances) == n > 0
    assert got.pred_instances.scores.tolist() == pytest.approx(ref_scores[:n].tolist(), abs=1e-5)
    assert got.pred_instances.bboxes.numpy() == pytest.approx(ref_boxes[:n].numpy(), abs=1e-3)
    # an image no larger than the tile: the same as without slicing
    small = img[:40, :60].copy()
    plain = inference_detector(model, small).pred_instances
    once = inference_detector(model, small, slice_size=(40, 60)).pred_instances
    assert torch.equal(plain.bboxes, once.bboxes) and torch.equal(plain.scores, once.scores)
    with pytest.raises(ValueError, match='overlap'):
        inference_detector(model, img, slice_size=(40, 60), slice_overlap=1.2)


def test_inferencer_slicing_equals_inference_detector(api_config, tmp_path):
    torch.manual_seed(0)
    inferencer = DetInferencer(api_config, device='cpu', show_progress=False,
                               slice_size=(40, 60), slice_merge='nmm')
    torch.nn.init.zeros_(inferencer.model.module.bbox_head.conv_cls.bias)
    img = np.random.default_rng(1).integers(0, 256, (70, 110, 3), dtype=np.uint8)
    out = inferencer([img], return_datasamples=True)['predictions'][0].pred_instances
    ref = inference_detector(inferencer.model.module, img, slice_size=(40, 60),
                             slice_merge='nmm').pred_instances
    assert len(out) > 0
    assert torch.equal(out.bboxes, ref.bboxes) and torch.equal(out.scores, ref.scores)


def test_onnxruntime_backend_slices_through_the_same_interface(api_config, tmp_path):
    from fcosdet.deployment import export_onnx

    torch.manual_seed(0)
    model = init_detector(api_config)
    torch.nn.init.zeros_(model.bbox_head.conv_cls.bias)
    onnx_file = export_onnx(model, str(tmp_path / 'tiny.onnx'), shape=(80, 180), dynamic=True)
    ort = init_detector(api_config, onnx_file, backend='onnxruntime')
    img = np.random.default_rng(2).integers(0, 256, (70, 110, 3), dtype=np.uint8)
    ref = inference_detector(model, img, slice_size=(40, 60)).pred_instances
    got = inference_detector(ort, img, slice_size=(40, 60)).pred_instances
    assert len(got) == len(ref) > 0
    torch.testing.assert_close(got.scores, ref.scores, atol=1e-4, rtol=0)
    torch.testing.assert_close(got.bboxes, ref.bboxes, atol=1e-2, rtol=0)
