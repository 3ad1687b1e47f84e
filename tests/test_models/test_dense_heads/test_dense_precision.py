"""Positions stay float32 under CPU bfloat16 autocast (whose maps are bfloat16, 8 significant
bits: numbers between 512 and 1024 are 4 apart): priors, GFL's integral of the side
distributions, TOOD's boxes."""
import torch

from fcosdet.models.dense_heads import TOODHead
from fcosdet.models.dense_heads.dense_utils import grid_priors_like
from fcosdet.models.dense_heads.gfl_head import Integral
from fcosdet.registry import TASK_UTILS
from fcosdet.utils import register_all_modules

register_all_modules()
SIZES = [(8, 104), (4, 52), (2, 26), (1, 13), (1, 7)]  # stride 8: up to 832 px


def test_priors_of_bf16_maps_are_float32() -> None:
    anchors = TASK_UTILS.build(dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=8,
                                    scales_per_octave=1, strides=[8, 16, 32, 64, 128]))
    maps = [torch.zeros(1, 1, h, w, dtype=torch.bfloat16) for h, w in SIZES]
    mixed = grid_priors_like(anchors, maps)
    exact = grid_priors_like(anchors, [m.float() for m in maps])
    assert all(m.dtype == torch.float32 for m in mixed)
    assert all(torch.equal(m, e) for m, e in zip(mixed, exact))
    # the last stride-8 anchor: centre (103 * 8, 7 * 8) = (824, 56) px, 64 px wide, exactly
    assert mixed[0][-1].tolist() == [792.0, 24.0, 856.0, 88.0]


def test_gfl_integral_is_float32_under_autocast() -> None:
    logits = torch.randn(6, 4 * 17, generator=torch.Generator().manual_seed(0)) * 3
    integral = Integral(16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        mixed = integral(logits)
    exact = (logits.reshape(6, 4, 17).softmax(-1) * torch.arange(17.0)).sum(-1)
    assert mixed.dtype == torch.float32
    assert torch.allclose(mixed, exact, atol=1e-5)


def test_tood_boxes_and_scores_are_float32_under_autocast() -> None:
    torch.manual_seed(0)
    head = TOODHead(num_classes=3, in_channels=16, feat_channels=16, stacked_convs=2,
                    norm_cfg=dict(type='GN', num_groups=4))
    head.init_weights()
    feats = tuple(torch.randn(1, 16, h, w) for h, w in SIZES)
    with torch.no_grad():
        exact_scores, exact_boxes = head(feats)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            scores, boxes = head(tuple(f.bfloat16() for f in feats))
    assert {t.dtype for t in scores + boxes} == {torch.float32}
    # boxes in strides around anchor centres up to 103: bfloat16 positions there are 0.5 apart
    for mixed, exact in zip(boxes, exact_boxes):
        assert (mixed - exact).abs().max() < 0.05
