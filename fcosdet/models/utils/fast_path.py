"""CPU inference fast paths of a detector: BN folding, channels-last and bfloat16 autocast.

Selected by the top-level config key ``fast_path=dict(channels_last=..., fuse_bn=..., bf16=...)``
or by names on the command line (``--fast-path channels_last fuse_bn bf16``). Without the key,
evaluation and inference (``tools/test.py``, ``init_detector``) use :data:`DEFAULT_FAST_PATH`,
the exact fp32 fast path: ``fuse_bn`` and ``channels_last`` keep fp32 numerics up to rounding,
``bf16`` does not. ``fast_path=None`` in a config (``--no-fast-path``) turns them all off.

Shape letters: N images, H/W image height/width.
"""
import functools
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from .bn_folding import conv_bn_pairs, fold_pairs

FAST_PATH_KEYS = ('channels_last', 'fuse_bn', 'bf16')
FastPathSpec = Mapping[str, bool] | Sequence[str] | None
# What evaluation and inference use when the config has no `fast_path` key: exact in fp32 and
# 0.75x the eager time of R-50 FCOS at 800x1216 on 2 CPU threads (docs/benchmark.md).
DEFAULT_FAST_PATH = dict(channels_last=True, fuse_bn=True, bf16=False)


def parse_fast_path(spec: FastPathSpec) -> dict[str, bool]:
    """Normalise a fast-path selection to ``{key: bool}`` over :data:`FAST_PATH_KEYS`.

    Args:
        spec: None (all off), a mapping such as ``dict(channels_last=True, bf16=False)``, or a
            sequence of names such as ``['channels_last', 'fuse_bn']``.

    Returns:
        dict[str, bool]: Every key of :data:`FAST_PATH_KEYS`, missing ones False.

    Raises:
        KeyError: An unknown name, naming it and the valid ones.
        TypeError: A value of a mapping that is not a bool, or a spec of another type.
    """
    selected = dict.fromkeys(FAST_PATH_KEYS, False)
    if spec is None:
        return selected
    if isinstance(spec, str):
        spec = [spec]
    if isinstance(spec, Mapping):
        items = list(spec.items())
    elif isinstance(spec, Sequence):
        items = [(name, True) for name in spec]
    else:
        raise TypeError(f'fast_path must be a dict or a list of names, got {type(spec).__name__}')
    for key, value in items:
        if key not in selected:
            raise KeyError(f'fast_path: unknown key {key!r}; expected any of {FAST_PATH_KEYS}')
        if not isinstance(value, bool):
            raise TypeError(f'fast_path.{key} must be a bool, got {value!r}')
        selected[key] = value
    return selected


def config_fast_path(cfg: Mapping) -> dict[str, bool]:
    """The fast paths a config selects: its top-level ``fast_path`` key, else the default.

    Args:
        cfg: A config (mapping) with an optional ``fast_path`` key (None: all off).

    Returns:
        dict[str, bool]: As :func:`parse_fast_path`; :data:`DEFAULT_FAST_PATH` without the key.
    """
    return parse_fast_path(cfg.get('fast_path', DEFAULT_FAST_PATH))


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX) for oneDNN."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _to_float32(outputs: object) -> object:
    """Cast every floating tensor of a (nested) tuple/list output back to float32."""
    if isinstance(outputs, Tensor):
        return outputs.float() if outputs.is_floating_point() else outputs
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(_to_float32(item) for item in outputs)
    return outputs


def autocast_method(owner: object, name: str, dtype: torch.dtype = torch.bfloat16,
                    float_outputs: bool = False) -> None:
    """Make ``owner.<name>`` run under CPU autocast to ``dtype`` (an instance attribute).

    Args:
        owner: Object whose bound method is wrapped (e.g. a module and ``'forward'``).
        name: Method name.
        dtype: Autocast dtype.
        float_outputs: Cast the floating outputs back to float32, so code after it (e.g.
            post-processing) runs in full precision.
    """
    method: Callable = getattr(owner, name)

    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        with torch.autocast('cpu', dtype=dtype):
            outputs = method(*args, **kwargs)
        return _to_float32(outputs) if float_outputs else outputs

    setattr(owner, name, wrapped)


def _to_channels_last_input(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: the image batch ``[N, 3, H, W]`` (first argument) to channels-last."""
    if args and isinstance(args[0], Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return args


def to_channels_last(model: nn.Module) -> None:
    """Put a detector in channels-last memory format, in place, for training or inference.

    Weights (and so gradients and optimizer states) become NHWC, and a forward pre-hook converts
    the image batch given to ``model.backbone``; every conv after it then works in NHWC, which
    oneDNN runs faster than NCHW (forward and backward). Values are unchanged. Calling it again
    adds nothing.

    Args:
        model (nn.Module): Detector with a ``backbone``.
    """
    model.to(memory_format=torch.channels_last)
    hooks = model.backbone._forward_pre_hooks.values()
    if _to_channels_last_input not in hooks:
        model.backbone.register_forward_pre_hook(_to_channels_last_input)


def fold_detector_batchnorm(model: nn.Module,
                            parts: Sequence[str] = ('backbone', 'neck', 'bbox_head')) -> bool:
    """Fold the BN layers of the detector's ``parts``, all or none.

    Every part is traced first; when one cannot be (a custom module with Python control flow
    on tensor values), nothing is folded, one warning line says why, and the model stays
    eager, with the same outputs.

    Args:
        model (nn.Module): Eval-mode detector.
        parts: Attribute names of the submodules to fold.

    Returns:
        bool: Whether the BN layers were folded.
    """
    try:
        pairs = {part: conv_bn_pairs(getattr(model, part)) for part in parts}
    except RuntimeError as err:
        print_log(f'fast_path fuse_bn: {err}; BatchNorm left unfolded (eager), the other '
                  'fast paths still apply', logger='current', level=logging.WARNING)
        return False
    for part, part_pairs in pairs.items():
        fold_pairs(getattr(model, part), part_pairs)
    return True


def apply_fast_path(model: nn.Module, spec: FastPathSpec) -> dict[str, bool]:
    """Switch an eval-mode detector to the selected fast paths, in place, for inference.

    Order: BN folding of ``backbone``/``neck``/``bbox_head`` (after the checkpoint has been
    loaded; skipped with one logged line when a part cannot be traced, see
    :func:`fold_detector_batchnorm`), then channels-last weights plus a pre-hook converting the
    input of ``backbone``, then bfloat16 autocast of ``extract_feat`` and ``bbox_head.forward``
    with the head outputs cast back to float32 (post-processing stays fp32). bf16 on a CPU
    without native support warns and stays fp32.

    Args:
        model (nn.Module): Detector with ``backbone``, ``neck`` and ``bbox_head`` (FCOS).
        spec: See :func:`parse_fast_path`.

    Returns:
        dict[str, bool]: The fast paths actually enabled (``fuse_bn`` False after a fallback).

    Raises:
        ValueError: The model is in training mode while a fast path is selected.
    """
    selected = parse_fast_path(spec)
    if not any(selected.values()):
        return selected
    if model.training:
        raise ValueError('apply_fast_path: call model.eval() first; fast paths are for '
                         'inference only')
    if selected['fuse_bn']:
        selected['fuse_bn'] = fold_detector_batchnorm(model)
    if selected['channels_last']:
        to_channels_last(model)
    if selected['bf16'] and not cpu_supports_bf16():
        warnings.warn('fast_path bf16: this CPU has no native bfloat16 support '
                      '(AVX512-BF16/AMX); running in float32')
        selected['bf16'] = False
    if selected['bf16']:
        autocast_method(model, 'extract_feat')
        autocast_method(model.bbox_head, 'forward', float_outputs=True)
    return selected
