import mmcv
import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from fcosdet.datasets import CocoDataset
from fcosdet.registry import VISUALIZERS
from fcosdet.structures import DetDataSample
from fcosdet.visualization import DetLocalVisualizer, generate_palette, get_palette

RED, GREEN = (255, 0, 0), (0, 255, 0)
BOX = [10.0, 20.0, 50.0, 50.0]  # x1, y1, x2, y2


def make_visualizer(name: str) -> DetLocalVisualizer:
    visualizer = VISUALIZERS.build(dict(type='DetLocalVisualizer', name=name, alpha=1.0))
    visualizer.dataset_meta = dict(classes=('a', 'b'), palette=[RED, GREEN])
    return visualizer


def make_sample(gt_label: int, pred_label: int, score: float) -> DetDataSample:
    sample = DetDataSample()
    sample.gt_instances = InstanceData(bboxes=torch.tensor([BOX]), labels=torch.tensor([gt_label]))
    sample.pred_instances = InstanceData(bboxes=torch.tensor([BOX]),
                                         labels=torch.tensor([pred_label]),
                                         scores=torch.tensor([score]))
    return sample


def assert_box_drawn(panel: np.ndarray, colour: tuple[int, int, int]) -> None:
    """The bottom and right edges of BOX carry ``colour``; inside and outside stay black."""
    x1, y1, x2, y2 = (int(v) for v in BOX)
    expected = np.array(colour)
    # Edge pixels (away from the label text at the top-left corner), at full opacity.
    np.testing.assert_allclose(panel[y2, 30], expected, atol=60)
    np.testing.assert_allclose(panel[40, x2], expected, atol=60)
    np.testing.assert_allclose(panel[y2, 45], expected, atol=60)
    # Inside the box and well outside it nothing is drawn.
    assert panel[40, 30].max() == 0
    assert panel[35, 45].max() == 0
    assert panel[y2 + 4, 30].max() == 0
    assert panel[40, x2 + 4].max() == 0


def test_box_pixels_and_side_by_side_layout(tmp_path):
    visualizer = make_visualizer('vis_layout')
    image = np.zeros((60, 80, 3), np.uint8)
    out_file = tmp_path / 'drawn.png'
    visualizer.add_datasample('img', image, make_sample(0, 1, 0.9), out_file=str(out_file))
    drawn = mmcv.imread(str(out_file), channel_order='rgb')
    assert drawn.shape == (60, 160, 3)  # gt panel left, prediction panel right
    assert_box_drawn(drawn[:, :80], RED)  # gt: class 0
    assert_box_drawn(drawn[:, 80:], GREEN)  # prediction: class 1
    # Label background at the top-left corner has the class colour as well.
    assert drawn[21:24, 12:16, 0].mean() > 100 and drawn[21:24, 92:96, 1].mean() > 100


def test_single_panels_and_score_threshold(tmp_path):
    visualizer = make_visualizer('vis_single')
    image = np.zeros((60, 80, 3), np.uint8)
    sample = make_sample(0, 1, 0.2)

    visualizer.add_datasample('gt', image, sample, draw_pred=False,
                              out_file=str(tmp_path / 'g.png'))
    gt_only = mmcv.imread(str(tmp_path / 'g.png'), channel_order='rgb')
    assert gt_only.shape == (60, 80, 3)
    assert_box_drawn(gt_only, RED)

    # Score 0.2 is below the threshold: the prediction panel stays black.
    visualizer.add_datasample('pred', image, sample, draw_gt=False, pred_score_thr=0.3,
                              out_file=str(tmp_path / 'p.png'))
    pred_only = mmcv.imread(str(tmp_path / 'p.png'), channel_order='rgb')
    assert pred_only.shape == (60, 80, 3) and pred_only.max() == 0


def test_out_file_is_bgr_png(tmp_path):
    visualizer = make_visualizer('vis_bgr')
    image = np.zeros((60, 80, 3), np.uint8)
    visualizer.add_datasample('gt', image, make_sample(0, 0, 1.0), draw_pred=False,
                              out_file=str(tmp_path / 'g.png'))
    assert (tmp_path / 'g.png').read_bytes()[:4] == b'\x89PNG'
    raw = mmcv.imread(str(tmp_path / 'g.png'))  # BGR on disk: red is the last channel
    assert raw[50, 30, 2] > 195 and raw[50, 30, 0] == 0


def test_no_out_file_goes_to_backends(tmp_path):
    visualizer = VISUALIZERS.build(dict(
        type='DetLocalVisualizer', name='vis_backend', save_dir=str(tmp_path),
        vis_backends=[dict(type='LocalVisBackend')]))
    visualizer.add_datasample('sample', np.zeros((20, 30, 3), np.uint8), make_sample(0, 0, 1.0),
                              step=3)
    written = list((tmp_path / 'vis_data' / 'vis_image').glob('*.png'))
    assert [p.name for p in written] == ['sample_3.png']
    assert mmcv.imread(str(written[0])).shape == (20, 60, 3)


def test_generated_palette_without_meta(tmp_path):
    visualizer = DetLocalVisualizer(name='vis_nometa', alpha=1.0)
    sample = make_sample(2, 2, 1.0)
    visualizer.add_datasample('gt', np.zeros((60, 80, 3), np.uint8), sample, draw_pred=False,
                              out_file=str(tmp_path / 'g.png'))
    drawn = mmcv.imread(str(tmp_path / 'g.png'), channel_order='rgb')
    assert_box_drawn(drawn, generate_palette(3)[2])


def test_palette_helpers():
    palette = generate_palette(5)
    assert len(set(palette)) == 5
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in palette)
    assert generate_palette(5) == palette  # deterministic
    # class 0: hue 0, saturation 0.8, value 0.95 -> (0.95, 0.19, 0.19) * 255, rounded
    assert palette[0] == (242, 48, 48)
    assert CocoDataset.METAINFO['palette'] == generate_palette(80)  # one palette everywhere
    assert get_palette([[1, 2, 3]], 1) == [(1, 2, 3)]
    with pytest.raises(ValueError, match='palette'):
        get_palette([(1, 2, 3)], 2)
    with pytest.raises(ValueError, match='300'):
        get_palette([(1, 2, 300)], 1)


def test_rejects_non_rgb_image():
    visualizer = make_visualizer('vis_bad')
    with pytest.raises(ValueError, match=r'\(4, 4\)'):
        visualizer.add_datasample('x', np.zeros((4, 4), np.uint8))
