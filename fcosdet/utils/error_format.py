"""One-line messages for the errors the command-line tools report.

An unknown registry type (``ResNett``) or an unexpected keyword argument (``num_clases``) is
reported with the config key that holds it and the closest registered name or argument; a
DataLoader worker that died (whatever error it surfaced as) as such; every other error by its
message, squashed to one line and shortened.
"""
import difflib
import inspect
import os
import re
import traceback
from collections.abc import Iterator, Mapping

from mmengine.config import Config
from mmengine.registry import Registry

from fcosdet import registry as fcosdet_registry

_NOT_REGISTERED = re.compile(r'^(\S+) is not in the (?:(\w+)::)?(\S+) registry')
_UNEXPECTED_KW = re.compile(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")
_WORKER_DIED = re.compile(r'DataLoader worker \(pid')
_DATA_LOADING = (os.path.join('', 'torch', 'utils', 'data', ''),
                 os.path.join('', 'multiprocessing', ''))
_MAX_CHARS = 600  # a config printed into a message is thousands of characters


def _registries() -> list[Registry]:
    """fcosdet's registries."""
    return [r for r in vars(fcosdet_registry).values() if isinstance(r, Registry)]


def _names(registry: Registry) -> set[str]:
    """Names registered in ``registry`` and its parents."""
    names: set[str] = set()
    while registry is not None:
        names |= set(registry.module_dict)
        registry = registry.parent
    return names


def _find_class(name: str) -> type | None:
    """A class registered as ``name`` in any fcosdet registry (or a parent)."""
    for registry in _registries():
        found = registry.get(name)
        if inspect.isclass(found):
            return found
    return None


def _walk(node: object, path: str = '') -> Iterator[tuple[str, Mapping]]:
    """``(key path, dict)`` of every dict nested in ``node``."""
    if isinstance(node, Mapping):
        yield path, node
        items = node.items()
    elif isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        return
    for key, value in items:
        yield from _walk(value, f'{path}.{key}' if path else str(key))


def _key_path(cfg: Config | None, type_name: str, key: str) -> str | None:
    """Config path of ``key`` in the first dict with ``type=type_name`` that has it."""
    if cfg is None:
        return None
    for path, node in _walk(cfg.to_dict()):
        if node.get('type') == type_name and key in node:
            return f'{path}.{key}' if path else key
    return None


def _suggest(word: str, choices: set[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or ``''``."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ''


def _unknown_type(match: re.Match, cfg: Config | None) -> str:
    name, scope, registry_name = match.group(1), match.group(2) or 'fcosdet', match.group(3)
    registry = next((r for r in _registries() if (r.name, r.scope) == (registry_name, scope)),
                    None)
    suggestion = _suggest(name, _names(registry)) if registry is not None else ''
    where = _key_path(cfg, name, 'type')
    prefix = f'{cfg.filename}: {where}=' if where else ''
    return f"{prefix}'{name}' is not a registered {registry_name} type{suggestion}"


def _unexpected_keyword(match: re.Match, cfg: Config | None) -> str:
    class_name, key = match.group(1), match.group(2)
    cls = _find_class(class_name)
    params = set(inspect.signature(cls.__init__).parameters) - {'self'} if cls else set()
    where = _key_path(cfg, class_name, key)
    prefix = f'{cfg.filename}: {where}: ' if where else ''
    return f"{prefix}{class_name} has no argument '{key}'{_suggest(key, params)}"


def _chain(err: BaseException) -> Iterator[BaseException]:
    """``err`` and the exceptions it was raised from or during, innermost last."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _from_data_loading(err: BaseException) -> bool:
    """Whether ``err`` was raised in torch's DataLoader or multiprocessing code."""
    frames = traceback.extract_tb(err.__traceback__)
    return any(part in frame.filename for frame in frames for part in _DATA_LOADING)


def _worker_death(err: BaseException) -> str | None:
    """A line for a DataLoader worker that died, found anywhere in ``err``'s chain.

    torch's SIGCHLD handler raises in whatever the main process runs at that moment (e.g.
    mmengine formatting the config, which then reports the whole config as a syntax error), and
    a worker killed while sending a batch surfaces as ``Connection reset by peer``.
    """
    for link in _chain(err):
        text = ' '.join(str(link).split())
        died = isinstance(link, RuntimeError) and _WORKER_DIED.search(text)
        broken = (isinstance(link, (ConnectionError, EOFError)) and _from_data_loading(link))
        if died or broken:
            detail = text if died else f'{type(link).__name__}: {text}'
            return (f'a DataLoader worker process died ({detail[:200]}); it was killed (out of '
                    'memory?) or crashed: lower the dataloader\'s num_workers or batch_size; '
                    'training continues from its last checkpoint with --resume')
    return None


def _shorten(text: str) -> str:
    """``text``, cut at :data:`_MAX_CHARS` characters."""
    if len(text) <= _MAX_CHARS:
        return text
    return f'{text[:_MAX_CHARS]} ... ({len(text)} characters; --debug shows all)'


def error_message(err: BaseException, cfg: Config | None = None) -> str:
    """One line describing ``err`` for a user.

    Args:
        err: The exception a tool raised.
        cfg: The tool's config, if known, to name the key that holds a bad value.

    Returns:
        The message, without line breaks.
    """
    worker = _worker_death(err)
    if worker:
        return worker
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    text = _shorten(' '.join(text.split()))
    for pattern, describe in ((_NOT_REGISTERED, _unknown_type),
                              (_UNEXPECTED_KW, _unexpected_keyword)):
        match = pattern.search(text)
        if match:
            return describe(match, cfg)
    if len(text.split()) < 3:  # a bare value (e.g. KeyError: 'x') needs its type to make sense
        return f'{type(err).__name__}: {text}'.rstrip(': ')
    return text
