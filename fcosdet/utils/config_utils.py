"""The one config loader of fcosdet and its check of user overrides (``--cfg-options``).

:func:`load_config` is used by the tools (through :func:`fcosdet.utils.cli.load_config`),
:func:`fcosdet.apis.init_detector` and the onnxruntime path alike.
"""
import copy
import inspect
import os
from collections.abc import Mapping

from mmengine.config import Config
from mmengine.runner import Runner

# Top-level keys read although no base config sets them: by the Runner, and ``fast_path`` by
# ``init_detector`` and ``tools/test.py``.
_RUNNER_EXTRA_KEYS = frozenset({'runner_type', 'find_unused_parameters', 'sync_bn', 'fast_path'})


def runner_top_level_keys() -> frozenset[str]:
    """Top-level config keys the Runner understands (its ``__init__`` arguments and extras)."""
    params = inspect.signature(Runner.__init__).parameters
    return frozenset(p for p in params if p != 'self') | _RUNNER_EXTRA_KEYS


def _child(node: object, part: str) -> tuple[bool, object]:
    """``(found, value)`` of key ``part`` in a dict, or of index ``part`` in a list/tuple."""
    if isinstance(node, Mapping):
        return (part in node, node.get(part))
    if isinstance(node, (list, tuple)) and part.isdigit():
        return (int(part) < len(node), node[int(part)] if int(part) < len(node) else None)
    return (False, None)


def _check_value_type(cfg: Config, key: str, parent: object, value: object) -> None:
    """Reject a word where the config has a number or a bool (``max_epochs=two``).

    ``DictAction`` already turned ``12``, ``0.5`` and ``True`` into numbers and bools, so a
    string left where the config holds one is a typo that would fail much later without the key.
    """
    _, current = _child(parent, key.split('.')[-1])
    if not isinstance(value, str) or not isinstance(current, (bool, int, float)):
        return
    kind = 'True or False' if isinstance(current, bool) else 'a number'
    raise ValueError(f'--cfg-options {key}={value}: the config {cfg.filename} has {kind} there '
                     f'({current!r}), not {value!r}')


def check_cfg_options(cfg: Config, options: Mapping[str, object]) -> None:
    """Reject ``--cfg-options`` keys that do not fit the config.

    The rule: a top-level key must exist in the config or be a Runner argument
    (e.g. ``randomness``); below the top level, every parent of the key must exist (a dict, or a
    list indexed by a number), while the last part may be new, so that a component can be given
    an argument its config leaves at the default (``model.backbone.frozen_stages=2``). A word
    where the config holds a number or a bool is an error too (``train_cfg.max_epochs=two``).

    Args:
        cfg: The loaded config.
        options: The parsed ``key=value`` overrides.

    Raises:
        KeyError: Naming the offending key and the first missing part of its path.
        ValueError: Naming the key whose value is a word where the config has a number.
    """
    for key in options:
        parts = key.split('.')
        if parts[0] not in cfg and parts[0] not in runner_top_level_keys():
            raise KeyError(f'--cfg-options key "{key}": "{parts[0]}" is not in the config '
                           f'{cfg.filename}')
        node: object = cfg.to_dict()
        for depth, part in enumerate(parts[:-1]):
            found, node = _child(node, part)
            if not found:
                raise KeyError(f'--cfg-options key "{key}": "{".".join(parts[:depth + 1])}" '
                               f'is not in the config {cfg.filename}')
        if not isinstance(node, (Mapping, list, tuple)):
            raise KeyError(f'--cfg-options key "{key}": "{".".join(parts[:-1])}" is a '
                           f'{type(node).__name__}, not a dict or list')
        _check_value_type(cfg, key, node, options[key])


def load_config(config: str | os.PathLike | Config,
                cfg_options: Mapping[str, object] | None = None) -> Config:
    """Load a config file (or copy a Config) and merge checked ``cfg_options`` overrides.

    Args:
        config: Config file path, or a Config (deep-copied; the caller's object is not changed).
        cfg_options: ``{'a.b': value}`` overrides; each key must pass :func:`check_cfg_options`.

    Returns:
        The config with the overrides merged in.

    Raises:
        FileNotFoundError: The config file does not exist.
        ValueError: The file cannot be parsed (the message names the file and the error).
        TypeError: ``config`` is neither a path nor a Config.
        KeyError: An override key does not fit the config (see :func:`check_cfg_options`).
    """
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    elif isinstance(config, (str, os.PathLike)):
        if not os.path.isfile(config):
            raise FileNotFoundError(f'config file not found: {config}')
        try:
            cfg = Config.fromfile(os.fspath(config))
        except Exception as err:  # any parse/import error of the user's file
            raise ValueError(f'cannot load config {config}: {type(err).__name__}: {err}') from err
    else:
        raise TypeError(f'config must be a file path or a Config, got {type(config).__name__}')
    if cfg_options:
        check_cfg_options(cfg, cfg_options)
        cfg.merge_from_dict(dict(cfg_options))
    return cfg
