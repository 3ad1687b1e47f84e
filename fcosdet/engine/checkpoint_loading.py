"""Safe reading of checkpoint files and shape-checked loading of their weights into a model.

Every checkpoint fcosdet reads goes through :func:`read_checkpoint`: ``torch.load`` with
``weights_only=True`` passed explicitly (torch < 2.6 still defaults to full unpickling, which
runs any code a crafted file holds), and one-line errors naming the file for missing, truncated,
empty, text or otherwise unreadable files.

:func:`load_model_weights` loads a checkpoint's ``state_dict`` into a model. By default it is
strict about the model being fully defined by the checkpoint (test and inference): a parameter
whose shape differs, or one the checkpoint lacks, is an error naming the parameters and both
sides' ``num_classes``. ``allow_partial=True`` (fine-tuning, or an explicit opt-out) loads the
matching tensors and warns about the rest.
"""
import io
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping

import torch
from mmengine import fileio
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper
from torch import nn

# (pattern, replacement) applied to state-dict keys: strip a DDP wrapper's prefix
DEFAULT_REVISE_KEYS = ((r'^module\.', ''),)
_MAX_NAMED = 4  # parameters named in one message


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or does not fit the model."""


def _error_detail(err: Exception) -> str:
    """The one informative line of a torch loading error (no advice to unpickle unsafely)."""
    text = str(err)
    if 'Weights only load failed' not in text:  # first sentence of the first line
        return text.splitlines()[0].split('. ')[0] if text.strip() else 'no data'
    lines = [ln.strip() for ln in text.splitlines()]
    line = next((ln for ln in lines if 'nsupported' in ln or 'GLOBAL' in ln), 'refused')
    line = line.split('WeightsUnpickler error:')[-1].strip()
    return re.split(r' was not an allowed global| whose module|\. ', line)[0]


def read_checkpoint(filename: str, map_location: str | Callable = 'cpu') -> dict:
    """Read a checkpoint file with ``weights_only=True``.

    Args:
        filename: Local path, or a URI of any mmengine file backend (``https://``, ``s3://``).
        map_location: Where to map the tensors (see :func:`torch.load`).

    Returns:
        The checkpoint, a dict.

    Raises:
        CheckpointError: Naming the file: not found, truncated/empty/not a PyTorch file, holding
            objects that ``weights_only`` loading refuses, or not a dict.
    """
    source: str | io.BytesIO = filename
    try:
        if '://' in filename:
            source = io.BytesIO(fileio.get(filename))
        checkpoint = torch.load(source, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f'checkpoint file not found: {filename}') from None
    except IsADirectoryError:
        raise CheckpointError(f'checkpoint {filename} is a folder, not a file') from None
    except Exception as err:  # torch raises many types on bad bytes
        if 'Weights only load failed' in str(err):
            raise CheckpointError(
                f'checkpoint {filename} is corrupt or holds Python objects other than tensors '
                f'and plain containers ({_error_detail(err)}); fcosdet only loads '
                'checkpoints with weights_only=True') from None
        raise CheckpointError(
            f'checkpoint {filename} cannot be read: truncated, empty or not a PyTorch '
            f'checkpoint ({type(err).__name__}: {_error_detail(err)})') from None
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'checkpoint {filename} holds a {type(checkpoint).__name__}, '
                              'not a dict of weights')
    return checkpoint


def _model_num_classes(model: nn.Module) -> int | None:
    """``bbox_head.num_classes`` of a detector, if it has one."""
    return getattr(getattr(model, 'bbox_head', None), 'num_classes', None)


def _checkpoint_num_classes(checkpoint: Mapping, state_dict: Mapping) -> int | None:
    """Classes of the checkpoint: its dataset meta, else the classifier's output channels."""
    classes = checkpoint.get('meta', {}).get('dataset_meta', {}).get('classes')
    if classes is not None:
        return len(classes)
    weight = state_dict.get('bbox_head.conv_cls.weight')
    return int(weight.shape[0]) if weight is not None else None


def _revised_state_dict(checkpoint: Mapping,
                        revise_keys: tuple[tuple[str, str], ...]) -> OrderedDict:
    """The checkpoint's ``state_dict`` (or the checkpoint itself) with keys revised."""
    state_dict = checkpoint.get('state_dict', checkpoint)
    revised = OrderedDict(state_dict)
    for pattern, replacement in revise_keys:
        revised = OrderedDict((re.sub(pattern, replacement, k), v) for k, v in revised.items())
    # module versions (e.g. BatchNorm's) travel in the metadata
    revised._metadata = getattr(state_dict, '_metadata', OrderedDict())
    return revised


def _named(keys: list[str]) -> str:
    """The first few names of ``keys``, then how many more."""
    more = f' and {len(keys) - _MAX_NAMED} more' if len(keys) > _MAX_NAMED else ''
    return ', '.join(keys[:_MAX_NAMED]) + more


def load_model_weights(model: nn.Module, checkpoint: Mapping, filename: str,
                       allow_partial: bool = False,
                       revise_keys: tuple[tuple[str, str], ...] = DEFAULT_REVISE_KEYS,
                       advice: str | None = None) -> None:
    """Load ``checkpoint['state_dict']`` into ``model``, checking shapes and coverage.

    Args:
        model: The model (a DDP wrapper or a TTA model is unwrapped to its detector).
        checkpoint: A checkpoint from :func:`read_checkpoint`.
        filename: Its file, for messages.
        allow_partial: Load only the tensors whose name and shape match and warn about the
            rest, instead of raising.
        revise_keys: ``(pattern, replacement)`` pairs applied to the checkpoint's keys.
        advice: The error's last sentence, what to do (default: use a checkpoint of this
            config or ``--allow-partial-load``).

    Raises:
        CheckpointError: Unless ``allow_partial``: a parameter differs in shape, or the model
            has parameters/buffers the checkpoint lacks. The message names them and both
            sides' ``num_classes``.
    """
    if is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module  # the detector inside (DDP, --tta), as mmengine's loader does
    state_dict = _revised_state_dict(checkpoint, revise_keys)
    own = model.state_dict()
    mismatched = [k for k, v in state_dict.items()
                  if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in state_dict and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in state_dict if k not in own]
    problems = []
    if mismatched:
        shapes = [f'{k} (checkpoint {list(state_dict[k].shape)}, model {list(own[k].shape)})'
                  for k in mismatched]
        problems.append(f'{len(mismatched)} tensor(s) differ in shape: {_named(shapes)}')
    if missing:
        problems.append(f'{len(missing)} model tensor(s) are not in it: {_named(missing)}')
    if problems:
        classes = (f'num_classes: checkpoint {_checkpoint_num_classes(checkpoint, state_dict)}, '
                   f'model {_model_num_classes(model)}')
        message = f'checkpoint {filename} does not fit the model: {"; ".join(problems)} ({classes})'
        if not allow_partial:
            raise CheckpointError(f'{message}. ' + (advice or 'Use a checkpoint of this config, '
                                  'or allow a partial load explicitly (--allow-partial-load)'))
        print_log(f'{message}; loading only the matching tensors', logger='current',
                  level=logging.WARNING)
    if unexpected:
        print_log(f'checkpoint {filename}: {len(unexpected)} tensor(s) not used by the model: '
                  f'{_named(unexpected)}', logger='current', level=logging.WARNING)
    for key in mismatched:
        del state_dict[key]
    model.load_state_dict(state_dict, strict=False)


def load_checkpoint_checked(model: nn.Module, filename: str, allow_partial: bool = False,
                            map_location: str | Callable = 'cpu') -> dict:
    """:func:`read_checkpoint` then :func:`load_model_weights`; the checkpoint is returned."""
    checkpoint = read_checkpoint(filename, map_location)
    load_model_weights(model, checkpoint, filename, allow_partial)
    return checkpoint
