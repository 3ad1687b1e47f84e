"""Every detector type on a batch without boxes whose box-side predictions overflowed (one inf
per output map): the box terms are exact zeros (MMDetection's sum over the empty positives,
where ``x.sum() * 0`` gives NaN), the classification loss and every gradient stay finite."""
import pytest
import torch
from matrix_setup import DETECTORS, build_slim_model, tiny_batch

from fcosdet.utils import register_all_modules


def with_inf(maps: list[torch.Tensor]) -> list[torch.Tensor]:
    """``maps`` with +inf at the first element of level 0 (still in the graph)."""
    first = torch.zeros(maps[0].shape, dtype=torch.bool)
    first.view(-1)[0] = True
    return [torch.where(first, float('inf'), maps[0]), *maps[1:]]


@pytest.mark.parametrize('detector', sorted(DETECTORS))
def test_no_positives_with_an_overflowed_prediction_gives_zero_box_losses(detector: str):
    register_all_modules()
    model = build_slim_model(DETECTORS[detector], detector)
    model.train()
    data = tiny_batch(model, with_boxes=False)
    samples = data['data_samples']
    cls_scores, *others = model.bbox_head(model.extract_feat(data['inputs']))
    losses = model.bbox_head.loss_by_feat(
        cls_scores, *[with_inf(maps) for maps in others], [s.gt_instances for s in samples],
        [s.metainfo for s in samples])
    box_terms = {key: value for key, value in losses.items() if key != 'loss_cls'}
    assert box_terms and all(value.item() == 0.0 for value in box_terms.values()), losses
    assert torch.isfinite(losses['loss_cls']) and losses['loss_cls'] > 0
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
