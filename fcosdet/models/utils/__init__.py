from .bn_folding import conv_bn_pairs, fold_batchnorm, fold_pairs, fused_conv_bn_params
from .fast_path import (
    DEFAULT_FAST_PATH,
    FAST_PATH_KEYS,
    FastPathSpec,
    apply_fast_path,
    autocast_method,
    config_fast_path,
    cpu_supports_bf16,
    fold_detector_batchnorm,
    parse_fast_path,
    to_channels_last,
)

__all__ = ['conv_bn_pairs', 'fold_batchnorm', 'fold_pairs', 'fused_conv_bn_params',
           'fold_detector_batchnorm', 'DEFAULT_FAST_PATH', 'FAST_PATH_KEYS',
           'FastPathSpec', 'apply_fast_path', 'autocast_method', 'config_fast_path',
           'cpu_supports_bf16', 'parse_fast_path', 'to_channels_last']
