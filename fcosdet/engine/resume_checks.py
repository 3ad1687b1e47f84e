"""What ``--resume`` cannot carry over from a changed config, said in one line before it fails.

mmengine's resume restores the optimizer's param groups (learning rate included) and the
schedulers' state from the checkpoint, so a learning rate changed in the config is ignored,
an optimizer of another type dies at its first step (``KeyError: 'momentum'`` after AdamW →
SGD), and another model (``num_classes``) dies on the first momentum update. These checks name
what is used and how to start fresh from the weights instead.
"""
import ast
import copy
from collections.abc import Mapping

from torch.optim import Optimizer

from .checkpoint_loading import CheckpointError

# param-group keys that are implementation switches, not training hyperparameters
_NOT_HYPERPARAMETERS = frozenset({'params', 'lr', 'initial_lr', 'foreach', 'fused',
                                  'differentiable', 'maximize', 'capturable'})


def start_fresh_advice(filename: str) -> str:
    """How to train on from a checkpoint's weights with the config's settings."""
    return (f'to use the config instead, start fresh from its weights: --cfg-options '
            f'load_from={filename} (without --resume)')


def _field(node: ast.AST | None, key: str) -> ast.AST | None:
    """The value of ``key`` in a ``dict(key=...)`` call or a ``{'key': ...}`` literal."""
    if isinstance(node, ast.Call):
        return next((k.value for k in node.keywords if k.arg == key), None)
    if isinstance(node, ast.Dict):
        return next((v for k, v in zip(node.keys, node.values)
                     if isinstance(k, ast.Constant) and k.value == key), None)
    return None


def _saved_optimizer_type(checkpoint: Mapping) -> str | None:
    """``optim_wrapper.optimizer.type`` of the config text stored in the checkpoint, if any.

    The text is parsed, never run: executing it would run code from the checkpoint.
    """
    text = checkpoint.get('meta', {}).get('cfg')
    try:
        tree = ast.parse(text) if isinstance(text, str) else None
    except SyntaxError:  # an old or foreign config text: the type is only for the message
        return None
    for statement in tree.body if tree else []:
        if (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)
                and statement.targets[0].id == 'optim_wrapper'):
            found = _field(_field(statement.value, 'optimizer'), 'type')
            if isinstance(found, ast.Constant) and isinstance(found.value, str):
                return found.value.rsplit('.', 1)[-1]  # 'torch.optim.SGD' -> 'SGD'
    return None


def _lacking_keys(optimizer: Optimizer, saved_groups: list) -> list[str]:
    """Hyperparameters ``optimizer`` needs that the saved groups lack, after torch filled in
    the keys its newer versions added (``Optimizer.__setstate__``: ``foreach``, ...)."""
    probe = copy.copy(optimizer)  # shares the parameters, not the param-group dicts set below
    groups = [dict(group) for group in saved_groups]
    probe.__setstate__({'state': {}, 'param_groups': groups})
    return sorted({k for group, saved in zip(optimizer.param_groups, groups)
                   for k in group if k not in saved and k not in _NOT_HYPERPARAMETERS})


def _check_same_type(optimizer: Optimizer, saved_groups: list, checkpoint: Mapping,
                     filename: str) -> None:
    """Raise when the saved param groups cannot belong to ``optimizer``'s type."""
    name = type(optimizer).__name__
    saved_type = _saved_optimizer_type(checkpoint)
    if len(saved_groups) != len(optimizer.param_groups):
        problem = (f'{len(saved_groups)} parameter group(s) in the checkpoint, '
                   f'{len(optimizer.param_groups)} in the config (paramwise_cfg changed?)')
    else:
        lacking = _lacking_keys(optimizer, saved_groups)
        if not lacking and saved_type in (None, name):
            return
        was = f"{saved_type}'s state" if saved_type else 'the state of another optimizer'
        problem = (f'the checkpoint holds {was}, the config asks for {name}'
                   + (f' (it lacks {", ".join(map(repr, lacking))})' if lacking else ''))
    raise CheckpointError(f'--resume from {filename}: {problem}; an optimizer state cannot be '
                          f'resumed into another optimizer; {start_fresh_advice(filename)}')


def _lr_key(group: Mapping, saved: Mapping) -> str | None:
    """The key holding the configured lr: ``initial_lr`` under schedulers, else ``lr``."""
    if 'initial_lr' in group and 'initial_lr' in saved:
        return 'initial_lr'
    if 'initial_lr' not in group and 'initial_lr' not in saved:
        return 'lr'
    return None


def _changed_values(optimizer: Optimizer, saved_groups: list) -> list[str]:
    """``'lr 0.02 (config) vs 0.01 (checkpoint)'`` for each hyperparameter that differs."""
    changed: dict[str, str] = {}
    for group, saved in zip(optimizer.param_groups, saved_groups):
        keys = [k for k in group if k in saved and k not in _NOT_HYPERPARAMETERS]
        lr_key = _lr_key(group, saved)
        for key in ([lr_key] if lr_key else []) + keys:
            name = 'lr' if key == 'initial_lr' else key
            if name not in changed and group[key] != saved[key]:
                changed[name] = f'{name} {group[key]} (config) vs {saved[key]} (checkpoint)'
    return list(changed.values())


def check_resumed_optimizer(optimizer: Optimizer | None, checkpoint: Mapping, filename: str,
                            stopped_at: str = '') -> str | None:
    """Compare the config's optimizer with the one a checkpoint resumes.

    Args:
        optimizer: The optimizer built from the config (None: nothing to compare).
        checkpoint: The checkpoint being resumed (``optimizer.param_groups``, ``meta.cfg``).
        filename: Its file, for messages.
        stopped_at: Where the last run from this checkpoint stopped with a non-finite loss
            (:func:`fcosdet.engine.checkpoint_files.nonfinite_stop_after`), or ``''``.

    Returns:
        A one-line warning naming each changed hyperparameter (the checkpoint's values are the
        ones used), or that the run will likely stop at ``stopped_at`` again; None when
        nothing changed and no stop is known.

    Raises:
        CheckpointError: The checkpoint's optimizer state is of another type or has another
            number of parameter groups (mmengine would fail later with ``KeyError``), or a
            changed value would be ignored on the way back into a known non-finite loss.
    """
    saved_groups = checkpoint.get('optimizer', {}).get('param_groups')
    if optimizer is None or not isinstance(saved_groups, list):
        return None
    _check_same_type(optimizer, saved_groups, checkpoint, filename)
    changed = '; '.join(_changed_values(optimizer, saved_groups))
    if changed and stopped_at:  # the user lowered the lr after a NaN stop: it would be ignored
        raise CheckpointError(
            f'--resume from {filename}: the last run from it stopped with a non-finite loss at '
            f'{stopped_at}, and the config changed {changed}, which resuming would not use '
            f'(the optimizer and schedule state are restored); {start_fresh_advice(filename)}')
    if changed:
        return (f'--resume from {filename}: the config changed {changed}; resuming uses the '
                "checkpoint's values (mmengine restores the optimizer and schedule state); "
                f'{start_fresh_advice(filename)}')
    if stopped_at:
        return (f'--resume from {filename}: the last run from it stopped with a non-finite loss '
                f'at {stopped_at}; with the same settings it will likely stop there again (to '
                'lower the learning rate, change it in the config and start fresh from its '
                f'weights: --cfg-options load_from={filename}, without --resume)')
    return None
