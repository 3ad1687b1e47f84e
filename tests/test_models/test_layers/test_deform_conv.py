"""Deformable convolution: the pure op against a loop-based reference written here, hand-worked
special cases, and MMCV's parameter names/shapes."""
import math

import pytest
import torch
import torch.nn.functional as F

from fcosdet.models.layers import (
    DeformConv2d,
    DeformConv2dPack,
    ModulatedDeformConv2d,
    ModulatedDeformConv2dPack,
    deform_conv2d,
    deform_conv2d_pure,
)
from fcosdet.registry import MODELS


def bilinear(plane: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Value of ``plane [E, H, W]`` at real position (y, x); pixels outside read 0."""
    h, w = plane.shape[-2:]
    y0, x0 = math.floor(y.item()), math.floor(x.item())
    value = plane.new_zeros(plane.shape[0])
    for yy in (y0, y0 + 1):
        for xx in (x0, x0 + 1):
            if 0 <= yy < h and 0 <= xx < w:
                value = value + (1 - (y - yy).abs()) * (1 - (x - xx).abs()) * plane[:, yy, xx]
    return value


def loop_deform_conv(x, offset, weight, bias, stride, padding, dilation, groups, dgroups,
                     mask):
    """Direct definition: one output pixel, one kernel point, one deform group at a time."""
    n, c, _, _ = x.shape
    o, cg, kh, kw = weight.shape
    ho, wo = offset.shape[-2:]
    ce, og = c // dgroups, o // groups
    out = []
    for b in range(n):
        pixels = []
        for oy in range(ho):
            for ox in range(wo):
                acc = x.new_zeros(o) if bias is None else bias.clone()
                for i in range(kh):
                    for j in range(kw):
                        k = i * kw + j
                        sample = []
                        for g in range(dgroups):
                            dy = offset[b, g * 2 * kh * kw + 2 * k, oy, ox]
                            dx = offset[b, g * 2 * kh * kw + 2 * k + 1, oy, ox]
                            v = bilinear(x[b, g * ce:(g + 1) * ce],
                                         oy * stride - padding + i * dilation + dy,
                                         ox * stride - padding + j * dilation + dx)
                            if mask is not None:
                                v = v * mask[b, g * kh * kw + k, oy, ox]
                            sample.append(v)
                        sample = torch.cat(sample)  # [C]
                        acc = acc + torch.cat([
                            weight[gi * og:(gi + 1) * og, :, i, j] @ sample[gi * cg:(gi + 1) * cg]
                            for gi in range(groups)])
                pixels.append(acc)
        out.append(torch.stack(pixels, dim=1).view(o, ho, wo))
    return torch.stack(out)


def make_inputs(n, c, h, w, o, k, stride, padding, dilation, groups, dgroups, with_mask,
                offset_scale, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ho = (h + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    wo = (w + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    opts = dict(dtype=torch.float64, generator=gen)
    x = torch.randn(n, c, h, w, **opts)
    offset = torch.randn(n, dgroups * 2 * k * k, ho, wo, **opts) * offset_scale
    weight = torch.randn(o, c // groups, k, k, **opts)
    bias = torch.randn(o, **opts)
    mask = torch.rand(n, dgroups * k * k, ho, wo, **opts) if with_mask else None
    return [t if t is None else t.requires_grad_() for t in (x, offset, weight, bias, mask)]


CASES = [  # stride, padding, dilation, groups, deform groups, mask, offset scale
    (1, 1, 1, 1, 1, True, 1.3),
    (2, 1, 1, 2, 2, True, 2.5),  # large offsets: many samples partly or fully outside
    (1, 0, 2, 1, 2, False, 0.7),  # DCNv1, dilation
    (1, 2, 1, 2, 1, False, 4.0),
]


@pytest.mark.parametrize('stride,padding,dilation,groups,dgroups,with_mask,scale', CASES)
def test_matches_loop_reference(stride, padding, dilation, groups, dgroups, with_mask, scale):
    x, offset, weight, bias, mask = make_inputs(1, 4, 5, 6, 4, 3, stride, padding, dilation,
                                                groups, dgroups, with_mask, scale)
    ours = deform_conv2d_pure(x, offset, weight, bias, stride, padding, dilation, groups,
                              dgroups, mask)
    ref = loop_deform_conv(x, offset, weight, bias, stride, padding, dilation, groups,
                           dgroups, mask)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    inputs = [t for t in (x, offset, weight, bias, mask) if t is not None]
    # A non-linear read-out so every gradient entry is weighted differently.
    probe = torch.linspace(-1, 1, ref.numel(), dtype=ref.dtype).view_as(ref)
    grads = torch.autograd.grad((ours.sin() * probe).sum(), inputs)
    ref_grads = torch.autograd.grad((ref.sin() * probe).sum(), inputs)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_gradients_match_finite_differences():
    x, offset, weight, bias, mask = make_inputs(1, 2, 4, 4, 2, 3, 1, 1, 1, 1, 1, True, 0.8,
                                                seed=3)
    # Fractional offsets well away from integers: bilinear is smooth there.
    with torch.no_grad():
        offset.copy_(offset.round() + 0.3)

    def fn(*args):
        return deform_conv2d_pure(args[0], args[1], args[2], args[3], 1, 1, 1, 1, 1, args[4])

    assert torch.autograd.gradcheck(fn, (x, offset, weight, bias, mask), eps=1e-6, atol=1e-6)


def test_zero_offsets_unit_mask_is_plain_conv():
    x, offset, weight, bias, mask = make_inputs(2, 4, 7, 6, 6, 3, 2, 1, 2, 2, 2, True, 0.0)
    out = deform_conv2d_pure(x, offset, weight, bias, 2, 1, 2, 2, 2, torch.ones_like(mask))
    ref = F.conv2d(x, weight, bias, stride=2, padding=1, dilation=2, groups=2)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)


def test_integer_offsets_shift_the_input_and_mask_scales():
    """dy = 1, dx = -2 on every kernel point samples x shifted down 1 and left 2; a mask of
    0.25 scales the (bias-free) result."""
    x = torch.randn(1, 3, 6, 7, dtype=torch.float64)
    weight = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    offset = torch.tensor([1.0, -2.0], dtype=torch.float64).repeat(9).view(1, 18, 1, 1)
    offset = offset.expand(1, 18, 6, 7).contiguous()
    mask = torch.full((1, 9, 6, 7), 0.25, dtype=torch.float64)
    out = deform_conv2d_pure(x, offset, weight, padding=1, mask=mask)
    # Kernel point (i, j) of output (y, x) reads x[y + i, x + j - 3] (zero outside): pad by 3,
    # crop the window starting at (3, 0) and convolve without padding.
    window = F.pad(x, (3, 3, 3, 3))[..., 3:3 + 6 + 2, 0:7 + 2]
    torch.testing.assert_close(out, 0.25 * F.conv2d(window, weight), rtol=0, atol=1e-10)


def test_offsets_fully_outside_give_bias_only():
    x, offset, weight, bias, _ = make_inputs(1, 2, 4, 4, 3, 3, 1, 1, 1, 1, 1, False, 0.0)
    out = deform_conv2d_pure(x, offset.detach() + 100.0, weight, bias, padding=1)
    torch.testing.assert_close(out, bias.detach().view(1, 3, 1, 1).expand_as(out))


def test_float32_matches_float64():
    x, offset, weight, bias, mask = make_inputs(2, 16, 9, 11, 8, 3, 1, 1, 1, 1, 2, True, 1.5)
    args = (1, 1, 1, 1, 2)
    out32 = deform_conv2d_pure(x.float(), offset.float(), weight.float(), bias.float(), *args,
                               mask=mask.float())
    out64 = deform_conv2d_pure(x, offset, weight, bias, *args, mask=mask)
    torch.testing.assert_close(out32.double(), out64, rtol=0, atol=1e-4)


def test_shape_errors_name_the_tensor():
    x = torch.randn(1, 4, 5, 5)
    weight = torch.randn(4, 4, 3, 3)
    with pytest.raises(ValueError, match='offset must be'):
        deform_conv2d_pure(x, torch.zeros(1, 18, 4, 5), weight, padding=1)
    with pytest.raises(ValueError, match='mask must be'):
        deform_conv2d_pure(x, torch.zeros(1, 18, 5, 5), weight, padding=1,
                           mask=torch.zeros(1, 18, 5, 5))
    with pytest.raises(ValueError, match='groups'):
        deform_conv2d_pure(x, torch.zeros(1, 18, 5, 5), weight, padding=1, groups=2)


def test_compiled_fast_path_has_the_same_layout():
    """torchvision's op (optional) reads offsets and mask in the same layout."""
    pytest.importorskip('torchvision.ops')
    x, offset, weight, bias, mask = make_inputs(2, 4, 6, 5, 4, 3, 1, 1, 1, 2, 2, True, 1.7)
    for m in (mask, None):
        pure = deform_conv2d(x, offset, weight, bias, 1, 1, 1, 2, 2, m, use_compiled=False)
        fast = deform_conv2d(x, offset, weight, bias, 1, 1, 1, 2, 2, m, use_compiled=True)
        torch.testing.assert_close(fast, pure, rtol=0, atol=1e-6)


def test_modules_have_mmcv_parameters_and_names():
    dcn2 = MODELS.build(dict(type='DCNv2', in_channels=8, out_channels=6, kernel_size=3,
                             padding=1, deform_groups=2, bias=False))
    assert type(dcn2) is ModulatedDeformConv2dPack
    assert [(k, tuple(v.shape)) for k, v in dcn2.state_dict().items()] == [
        ('weight', (6, 8, 3, 3)), ('conv_offset.weight', (54, 8, 3, 3)),
        ('conv_offset.bias', (54,))]
    dcn1 = MODELS.build(dict(type='DCN', in_channels=8, out_channels=6, kernel_size=3,
                             padding=1, groups=2))
    assert type(dcn1) is DeformConv2dPack
    assert [(k, tuple(v.shape)) for k, v in dcn1.state_dict().items()] == [
        ('weight', (6, 4, 3, 3)), ('conv_offset.weight', (18, 8, 3, 3)),
        ('conv_offset.bias', (18,))]
    assert list(ModulatedDeformConv2d(4, 2, 3).state_dict()) == ['weight', 'bias']
    assert list(DeformConv2d(4, 2, 3).state_dict()) == ['weight']
    with pytest.raises(ValueError, match='bias'):
        DeformConv2d(4, 2, 3, bias=True)
    with pytest.raises(ValueError, match='deform_groups'):
        ModulatedDeformConv2d(6, 2, 3, deform_groups=4)


def test_packs_start_as_plain_convs():
    """Zero-initialised ``conv_offset``: no offsets, and DCNv2's mask is sigmoid(0) = 0.5."""
    x = torch.randn(2, 4, 6, 5)
    dcn2 = ModulatedDeformConv2dPack(4, 3, 3, stride=2, padding=1)
    torch.nn.init.normal_(dcn2.bias)
    ref = F.conv2d(x, dcn2.weight, None, stride=2, padding=1)
    torch.testing.assert_close(dcn2(x), 0.5 * ref + dcn2.bias.view(1, 3, 1, 1))
    dcn1 = DeformConv2dPack(4, 3, 3, padding=1, dilation=2)
    torch.testing.assert_close(dcn1(x), F.conv2d(x, dcn1.weight, padding=1, dilation=2))
    assert dcn2.conv_offset.weight.abs().sum() == 0 and dcn1.conv_offset.bias.abs().sum() == 0


def test_pack_splits_offsets_and_mask_like_mmcv():
    """conv_offset output channels: [0, 2DK) offsets, [2DK, 3DK) mask logits."""
    layer = ModulatedDeformConv2dPack(2, 2, 3, padding=1).double()
    torch.nn.init.normal_(layer.conv_offset.weight, std=0.3)
    torch.nn.init.normal_(layer.conv_offset.bias)
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64)
    raw = layer.conv_offset(x)
    ref = loop_deform_conv(x, raw[:, :18], layer.weight, layer.bias, 1, 1, 1, 1, 1,
                           raw[:, 18:].sigmoid())
    torch.testing.assert_close(layer(x), ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize('channels_last', [False, True])
def test_pack_with_deform_groups_in_any_memory_format(channels_last):
    """Two deform groups: the offsets are a channel slice of ``conv_offset``'s output (not a
    view-compatible tensor), and channels-last training (``ChannelsLastHook``) hands NHWC
    inputs and offsets to the op; both must give the loop reference's values and gradients."""
    layer = ModulatedDeformConv2dPack(4, 2, 3, padding=1, deform_groups=2).double()
    torch.nn.init.normal_(layer.conv_offset.weight, std=0.3)
    x = torch.randn(2, 4, 5, 4, dtype=torch.float64)  # N > 1: the slice is not viewable
    raw = layer.conv_offset(x).detach()
    ref = loop_deform_conv(x, raw[:, :36], layer.weight, layer.bias, 1, 1, 1, 1, 2,
                           raw[:, 36:].sigmoid())
    if channels_last:
        layer = layer.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    out = layer(x.requires_grad_())
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and layer.conv_offset.weight.grad.abs().sum() > 0


def _ramp_at(column: int, width: int) -> torch.Tensor:
    """``[1, 1, 2, width]`` bfloat16 plane whose value at column j is ``j - column`` (small
    integers, exact in bfloat16, near ``column``): a sample there reads its column offset."""
    ramp = torch.arange(width, dtype=torch.float32) - column
    return ramp.expand(2, width).reshape(1, 1, 2, width).to(torch.bfloat16)


@pytest.mark.parametrize('op', ['DeformConv2d', 'ModulatedDeformConv2d', 'deform_sampling'])
def test_bf16_autocast_samples_at_float32_positions(op: str) -> None:
    """Under bfloat16 autocast (features and offsets bfloat16, as a conv there gives them) a
    +0.3 px offset at column 290 samples at 290.3, not at 290 (bfloat16 has 8 significant
    bits: its numbers near 290 are 2 apart)."""
    from fcosdet.models.layers import deform_sampling

    column, width = 290, 320
    x = _ramp_at(column, width)
    offset = torch.zeros(1, 2, 2, width)
    offset[:, 1] = 0.3  # dx
    if op == 'DeformConv2d':
        layer = DeformConv2d(1, 1, 1)
        torch.nn.init.ones_(layer.weight)
        run = lambda x, off: layer(x, off)  # noqa: E731
    elif op == 'ModulatedDeformConv2d':
        layer = ModulatedDeformConv2d(1, 1, 1, bias=False)
        torch.nn.init.ones_(layer.weight)
        run = lambda x, off: layer(x, off, torch.ones_like(off[:, :1]))  # noqa: E731
    else:
        run = deform_sampling
    with torch.no_grad():
        exact = run(x.float(), offset)[0, 0, :, column]  # float32 features and positions
        with torch.autocast('cpu', dtype=torch.bfloat16):
            mixed = run(x, offset.to(torch.bfloat16))[0, 0, :, column]
    assert torch.allclose(exact, torch.full((2,), 0.3), atol=1e-4)  # the ramp read at 290.3
    assert (mixed.float() - exact).abs().max() < 0.05
