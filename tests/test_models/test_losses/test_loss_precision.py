"""Every loss computes in float32 whatever its prediction's dtype (MMDetection's dtype
discipline under mixed precision): a bfloat16 prediction gives, bit for bit, the loss of the
same prediction cast to float32 with float32 targets and weights, outside and inside CPU
autocast; and an empty selection's zero loss stays 0 when a prediction overflowed."""
import pytest
import torch

from fcosdet.models.losses import (
    CrossEntropyLoss,
    DistributionFocalLoss,
    FocalLoss,
    GIoULoss,
    IoULoss,
    QualityFocalLoss,
    VarifocalLoss,
    empty_loss,
)

R, C, B = 12, 5, 9  # rows, classes, DFL bins


def _inputs(name: str) -> tuple[torch.nn.Module, torch.Tensor, tuple, dict]:
    """Loss module, float32 prediction (exactly representable in bfloat16), targets and
    keyword arguments whose values are not representable in bfloat16 (0.7123, ...)."""
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(R, C, generator=gen) * 3).bfloat16().float()
    labels = torch.randint(0, C + 1, (R,), generator=gen)  # C = background
    quality = torch.rand(R, generator=gen) * 0.5 + 0.4123
    weight = torch.rand(R, generator=gen) + 0.0123
    kwargs = dict(weight=weight, avg_factor=3.7123)
    if name in ('FocalLoss', 'FocalLoss-activated'):
        activated = name.endswith('activated')
        pred = logits.sigmoid().bfloat16().float() if activated else logits
        return FocalLoss(activated=activated), pred, (labels,), kwargs
    if name in ('QualityFocalLoss', 'QualityFocalLoss-activated'):
        activated = name.endswith('activated')
        pred = logits.sigmoid().bfloat16().float() if activated else logits
        return QualityFocalLoss(activated=activated), pred, ((labels, quality),), kwargs
    if name == 'VarifocalLoss':
        dense = torch.zeros(R, C)
        fg = labels < C
        dense[fg.nonzero()[:, 0], labels[fg]] = quality[fg]
        return VarifocalLoss(), logits, (dense,), dict(avg_factor=3.7123)
    if name == 'DistributionFocalLoss':
        pred = (torch.randn(R, B, generator=gen) * 2).bfloat16().float()
        return DistributionFocalLoss(), pred, (torch.rand(R, generator=gen) * 7.9,), kwargs
    if name == 'CrossEntropyLoss':
        return CrossEntropyLoss(), logits[:, 0], (quality,), kwargs
    xy = torch.rand(R, 2, generator=gen) * 300 + 200  # large coordinates: bf16 steps of 1-2
    wh = torch.rand(R, 2, generator=gen) * 60 + 10
    target = torch.cat([xy, xy + wh], dim=1)
    pred = (target + torch.randn(R, 4, generator=gen) * 4).bfloat16().float()
    module = IoULoss() if name == 'IoULoss' else GIoULoss()
    return module, pred, (target,), kwargs


LOSSES = ['FocalLoss', 'FocalLoss-activated', 'QualityFocalLoss', 'QualityFocalLoss-activated',
          'VarifocalLoss', 'DistributionFocalLoss', 'CrossEntropyLoss', 'IoULoss', 'GIoULoss']


@pytest.mark.parametrize('autocast', [False, True], ids=['plain', 'autocast'])
@pytest.mark.parametrize('name', LOSSES)
def test_bf16_prediction_gives_the_float32_loss(name: str, autocast: bool) -> None:
    loss_fn, pred, targets, kwargs = _inputs(name)
    expected = loss_fn(pred, *targets, **kwargs)
    assert expected.dtype == torch.float32 and torch.isfinite(expected) and expected > 0
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        mixed = loss_fn(pred.bfloat16().requires_grad_(), *targets, **kwargs)
    assert mixed.dtype == torch.float32
    assert torch.equal(mixed, expected), (float(mixed), float(expected))


@pytest.mark.parametrize('value', [float('inf'), float('-inf'), float('nan')])
def test_empty_loss_is_zero_with_zero_gradients_for_an_overflowed_prediction(value: float):
    pred = torch.tensor([[1.0, value], [2.0, 3.0]], dtype=torch.bfloat16, requires_grad=True)
    zero = empty_loss(pred)
    assert zero.dtype == torch.float32 and zero.item() == 0.0
    zero.backward()  # attached to the graph (DDP sees the parameters used)
    assert torch.equal(pred.grad, torch.zeros_like(pred))

