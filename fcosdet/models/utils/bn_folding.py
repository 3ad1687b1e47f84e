"""Fold frozen BatchNorm layers into the convolution that feeds them (inference only).

An eval-mode BatchNorm is the per-channel affine map ``y = (x - mean) / sqrt(var + eps) * gamma
+ beta``; when ``x`` is the output of a convolution used by nothing else, the map can be merged
into that convolution's weight and bias (torch's ``fuse_conv_bn_weights``), removing one full
pass over the feature map. ``torch.fx`` finds those conv → BN pairs; the layers are replaced in
place, so the module keeps its structure and names. The trace enters only submodules that hold a
foldable BN: the others (e.g. deformable convs, whose shape checks are Python control flow fx
cannot trace) stay single calls in the graph.

Shape letters: C_out output channels of a convolution, C_in its input channels (per group),
k_h/k_w kernel height/width.
"""
import torch
import torch.fx as fx
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_weights


def fused_conv_bn_params(conv: nn.Conv2d, bn: _BatchNorm) -> tuple[Tensor, Tensor]:
    """Weight and bias of the single convolution equal to ``bn(conv(x))`` (bn in eval mode).

    The arithmetic is :func:`torch.nn.utils.fusion.fuse_conv_bn_weights`, run in float64 (the
    fold happens once, and the fused layer then matches the pair to float rounding of its own
    dtype) and cast back to the conv's dtype.

    Args:
        conv (nn.Conv2d): Weight ``[C_out, C_in, k_h, k_w]``, optional bias ``[C_out]``.
        bn (_BatchNorm): Eval-mode norm with running statistics of ``C_out`` channels.

    Returns:
        tuple[Tensor, Tensor]: Fused weight ``[C_out, C_in, k_h, k_w]`` and bias ``[C_out]``.
    """
    def f64(tensor: Tensor | None) -> Tensor | None:
        return None if tensor is None else tensor.detach().double()

    with torch.no_grad():
        weight, bias = fuse_conv_bn_weights(
            f64(conv.weight), f64(conv.bias), f64(bn.running_mean), f64(bn.running_var),
            bn.eps, f64(bn.weight), f64(bn.bias))
    return weight.detach().to(conv.weight.dtype), bias.detach().to(conv.weight.dtype)


def _is_foldable_bn(module: nn.Module) -> bool:
    """An eval-mode BatchNorm with running statistics (its output depends on nothing else)."""
    return (isinstance(module, _BatchNorm) and not module.training
            and module.running_mean is not None and module.running_var is not None)


class _FoldTracer(fx.Tracer):
    """fx tracer that treats every submodule without a foldable BN as a leaf (one call).

    Nothing inside such a module can be folded, and its code may not be traceable (DCN).

    Args:
        root (nn.Module): The module that will be traced.
    """

    def __init__(self, root: nn.Module) -> None:
        super().__init__()
        self.with_bn = {id(m) for m in root.modules()
                        if any(_is_foldable_bn(sub) for sub in m.modules())}

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return id(m) not in self.with_bn or super().is_leaf_module(m, module_qualified_name)


def conv_bn_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """Qualified names ``(conv, bn)`` of every ``nn.Conv2d`` whose only consumer is a foldable
    BN.

    Each conv and each BN must be called exactly once in the traced forward, so folding cannot
    change a second use of the same layer.

    Raises:
        RuntimeError: ``module`` holds foldable BN layers but cannot be traced by ``torch.fx``
            (the message names its type and the tracing error).
    """
    if not any(_is_foldable_bn(m) for m in module.modules()):
        return []
    try:
        graph = _FoldTracer(module).trace(module)
    except Exception as err:  # fx raises many types for untraceable Python code
        raise RuntimeError(f'fold_batchnorm: cannot trace {type(module).__name__} with '
                           f'torch.fx ({type(err).__name__}: {err})') from err
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == 'call_module':
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != 'call_module' or not _is_foldable_bn(module.get_submodule(node.target)):
            continue
        src = node.args[0] if node.args else None
        if (isinstance(src, fx.Node) and src.op == 'call_module' and len(src.users) == 1
                and type(module.get_submodule(src.target)) is nn.Conv2d
                and calls[src.target] == 1 and calls[node.target] == 1):
            pairs.append((src.target, node.target))
    return pairs


def fold_pairs(module: nn.Module, pairs: list[tuple[str, str]]) -> list[str]:
    """Fold each ``(conv, bn)`` pair of :func:`conv_bn_pairs`, in place.

    The conv gets the fused weight and bias (same ``requires_grad`` as before) and the BN is
    replaced by ``nn.Identity``.

    Returns:
        list[str]: Qualified names of the folded BN layers.
    """
    for conv_name, bn_name in pairs:
        conv = module.get_submodule(conv_name)
        weight, bias = fused_conv_bn_params(conv, module.get_submodule(bn_name))
        requires_grad = conv.weight.requires_grad
        conv.weight = nn.Parameter(weight, requires_grad=requires_grad)
        conv.bias = nn.Parameter(bias, requires_grad=requires_grad)
        parent_name, _, attr = bn_name.rpartition('.')
        setattr(module.get_submodule(parent_name), attr, nn.Identity())
    return [bn_name for _, bn_name in pairs]


def fold_batchnorm(module: nn.Module) -> list[str]:
    """Fold, in place, every frozen BatchNorm that directly follows a ``nn.Conv2d``.

    ``module``'s outputs are unchanged up to float rounding. Call it after loading a
    checkpoint: the folded module no longer has the BN entries of the original state dict. BN
    layers in training mode are left alone.

    Args:
        module (nn.Module): A module ``torch.fx`` can trace where it holds BN layers (e.g. a
            ResNet backbone, also with deformable convs).

    Returns:
        list[str]: Qualified names of the folded BN layers.

    Raises:
        RuntimeError: ``module`` holds foldable BN layers but cannot be traced.
    """
    return fold_pairs(module, conv_bn_pairs(module))
