"""Fast paths: selection parsing, fp32 equivalence of BN folding + channels-last, bf16 autocast."""
import copy
import logging
import uuid
import warnings

import pytest
import torch
from mmengine.logging import MMLogger
from tiny_setup import randomise_bn_stats
from torch import nn

import fcosdet.models.utils.fast_path as fast_path_module
from fcosdet.models.utils import apply_fast_path, autocast_method, parse_fast_path
from fcosdet.registry import MODELS
from fcosdet.structures import DetDataSample

TINY_FCOS = dict(
    type='FCOS',
    backbone=dict(type='ResNet', depth=18, base_channels=8, out_indices=(1, 2, 3),
                  norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True),
    neck=dict(type='FPN', in_channels=[16, 32, 64], out_channels=16, start_level=0,
              add_extra_convs='on_output', num_outs=5, relu_before_extra_convs=True),
    bbox_head=dict(type='FCOSHead', num_classes=3, in_channels=16, feat_channels=16,
                   stacked_convs=2, norm_on_bbox=True, centerness_on_reg=True,
                   norm_cfg=dict(type='GN', num_groups=4, requires_grad=True)),
    test_cfg=dict(nms_pre=100, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.6),
                  max_per_img=30))


def _tiny_detector() -> nn.Module:
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(TINY_FCOS))
    randomise_bn_stats(model.backbone, seed=1)
    nn.init.zeros_(model.bbox_head.conv_cls.bias)  # probabilities near 0.5: many detections
    return model.eval()


def _samples(num: int, height: int, width: int) -> list[DetDataSample]:
    return [DetDataSample(metainfo=dict(img_shape=(height, width), ori_shape=(height, width),
                                        scale_factor=(1.0, 1.0))) for _ in range(num)]


def _flat(outputs: tuple) -> list[torch.Tensor]:
    return [t for level_maps in outputs for t in level_maps]


def test_parse_fast_path_forms_and_errors():
    off = dict(channels_last=False, fuse_bn=False, bf16=False)
    assert parse_fast_path(None) == off
    assert parse_fast_path(['fuse_bn', 'bf16']) == dict(off, fuse_bn=True, bf16=True)
    assert parse_fast_path('channels_last') == dict(off, channels_last=True)
    assert parse_fast_path(dict(channels_last=True, bf16=False)) == dict(off, channels_last=True)
    with pytest.raises(KeyError, match="'fp16'"):
        parse_fast_path(['fp16'])
    with pytest.raises(TypeError, match='fast_path.bf16'):
        parse_fast_path(dict(bf16='yes'))
    with pytest.raises(TypeError, match='int'):
        parse_fast_path(3)


def test_fp32_fast_path_equals_plain_model():
    plain = _tiny_detector()
    fast = copy.deepcopy(plain)
    enabled = apply_fast_path(fast, dict(channels_last=True, fuse_bn=True))
    assert enabled == dict(channels_last=True, fuse_bn=True, bf16=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert fast.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        for exp, act in zip(_flat(plain(x)), _flat(fast(x))):
            torch.testing.assert_close(act, exp, atol=1e-4, rtol=1e-5)
        expected = plain.predict(x, _samples(2, 64, 96))
        actual = fast.predict(x, _samples(2, 64, 96))
    for exp, act in zip(expected, actual):
        exp, act = exp.pred_instances, act.pred_instances
        assert len(exp) > 0
        assert torch.equal(act.labels, exp.labels)
        torch.testing.assert_close(act.bboxes, exp.bboxes, atol=1e-3, rtol=1e-5)
        torch.testing.assert_close(act.scores, exp.scores, atol=1e-5, rtol=1e-5)


def test_bf16_fast_path_runs_network_in_bf16_and_outputs_fp32(monkeypatch):
    monkeypatch.setattr(fast_path_module, 'cpu_supports_bf16', lambda: True)
    plain = _tiny_detector()
    fast = copy.deepcopy(plain)
    assert apply_fast_path(fast, ['bf16'])['bf16']
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = fast.extract_feat(x)
        expected, actual = _flat(plain(x)), _flat(fast(x))
    assert all(f.dtype == torch.bfloat16 for f in feats)
    assert all(t.dtype == torch.float32 for t in actual)
    errors = [float((a - e).abs().max() / e.abs().max()) for a, e in zip(actual, expected)]
    # bf16 keeps 8 mantissa bits: a few percent of the range after ~20 layers, never exact
    assert max(errors) < 0.1 and max(errors) > 0


def test_bf16_without_cpu_support_warns_and_stays_fp32(monkeypatch):
    monkeypatch.setattr(fast_path_module, 'cpu_supports_bf16', lambda: False)
    plain = _tiny_detector()
    fast = copy.deepcopy(plain)
    with pytest.warns(UserWarning, match='bfloat16'):
        enabled = apply_fast_path(fast, dict(bf16=True))
    assert not enabled['bf16']
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for exp, act in zip(_flat(plain(x)), _flat(fast(x))):
            assert torch.equal(act, exp)


def test_fast_path_needs_eval_mode_and_none_is_a_no_op():
    model = _tiny_detector().train()
    with pytest.raises(ValueError, match='eval'):
        apply_fast_path(model, ['fuse_bn'])
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert not any(apply_fast_path(model, None).values())


def test_autocast_method_casts_back_only_when_asked():
    torch.manual_seed(0)
    x = torch.randn(8, 64)
    linear = nn.Linear(64, 16)
    reference = linear(x)
    autocast_method(linear, 'forward', float_outputs=False)
    assert linear(x).dtype == torch.bfloat16
    head = nn.Linear(64, 16)
    head.load_state_dict(linear.state_dict())
    autocast_method(head, 'forward', float_outputs=True)
    out = head(x)
    assert out.dtype == torch.float32
    # computed in bf16 (8 mantissa bits): close to, but not equal to, the fp32 result
    assert not torch.equal(out, reference)
    torch.testing.assert_close(out, reference, atol=0.05, rtol=0.02)


class _GatedBackbone(nn.Module):
    """A user's backbone with Python control flow on a tensor value: fx cannot trace it."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if x.abs().sum() > 0:
            return self.inner(x)
        return self.inner(x + 1)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.INFO:  # not the registry's debug messages
            self.lines.append(record.getMessage())


def test_untraceable_backbone_falls_back_to_eager_with_one_logged_line():
    logged = _Lines()
    MMLogger.get_instance(f'fast_path_{uuid.uuid4().hex}').addHandler(logged)  # the current one
    plain = _tiny_detector()
    plain.backbone = _GatedBackbone(plain.backbone)
    fast = copy.deepcopy(plain)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # one logged line, not a warning on top
        enabled = apply_fast_path(fast, dict(channels_last=True, fuse_bn=True))
    assert enabled == dict(channels_last=True, fuse_bn=False, bf16=False)
    (line,) = logged.lines
    assert line.startswith('fast_path fuse_bn: fold_batchnorm: cannot trace _GatedBackbone')
    assert 'BatchNorm left unfolded (eager)' in line
    # all or nothing: the traceable neck and head kept their layers too; channels-last applies
    assert sum(isinstance(m, nn.BatchNorm2d) for m in fast.modules()) == sum(
        isinstance(m, nn.BatchNorm2d) for m in plain.modules()) > 0
    assert fast.backbone.inner.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for exp, act in zip(_flat(plain(x)), _flat(fast(x))):
            torch.testing.assert_close(act, exp, atol=1e-4, rtol=1e-5)
