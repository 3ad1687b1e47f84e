"""Every shipped config that defines a model, slimmed (``matrix_setup``), takes one training
step in float32 and one under CPU bfloat16 autocast at the same weights and batch: both give
finite losses and gradients, every loss comes out in float32, and the bfloat16 losses lie
within a few percent of the float32 ones."""
import pytest
import torch
from matrix_setup import MODEL_CONFIGS, build_slim_model, tiny_batch

from fcosdet.utils import register_all_modules

# bfloat16 rounds each conv output to 8 significant bits: the slim models' losses differ from
# float32 by at most 0.5 % (GFL's loss_bbox), most by under 0.1 %.
REL_TOL = 0.03
ABS_TOL = 2e-3


def train_step(model: torch.nn.Module, data: dict, amp: bool) -> dict[str, torch.Tensor]:
    """Losses of one forward/backward pass (gradients left in the parameters)."""
    model.zero_grad()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
        losses = model(data['inputs'], data['data_samples'], mode='loss')
    sum(losses.values()).backward()
    return {key: value.detach() for key, value in losses.items()}


@pytest.mark.parametrize('config', MODEL_CONFIGS)
def test_float32_and_bf16_autocast_steps_agree(config: str) -> None:
    register_all_modules()
    model = build_slim_model(config)
    model.train()
    data = tiny_batch(model)
    results = {}
    for amp in (False, True):
        losses = train_step(model, data, amp)
        assert {v.dtype for v in losses.values()} == {torch.float32}, (amp, losses)
        assert all(torch.isfinite(v) for v in losses.values()), (amp, losses)
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads), amp
        results[amp] = losses
    for key, full in results[False].items():
        assert full > 0, key  # every term is exercised: the batch has positives
        assert abs(results[True][key] - full) <= REL_TOL * full + ABS_TOL, (
            key, float(full), float(results[True][key]))
